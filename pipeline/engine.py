"""Execution: nipype's MultiProc plugin made to always end.

nipype's ``MultiProcPlugin`` hands each step to a ``ProcessPoolExecutor`` and reads the
result in a callback. When a worker process dies (killed by the kernel or a cgroup for
memory, a segmentation fault in a compiled library), the executor breaks: the callback's
``future.result()`` raises ``BrokenProcessPool`` inside the executor's thread, where it is
only logged, so the step never gets a result and the scheduler waits for it forever.
:class:`SafeMultiProcPlugin` turns that into a failed step with a readable crash file
(``WorkerDiedError: ...``): its dependants are not run, the run ends, and the participant is
reported as failed.

It also gives its workers the default ``SIGTERM`` action and makes them ignore ``SIGINT``,
so that the main process alone decides how a run ends (:func:`terminate_workers` stops them
after a ``SIGTERM`` from SLURM or a Ctrl-C), instead of workers surviving it.

And it takes two waits out of nipype's scheduling loop (measured with cProfile on one
demo participant): the full garbage collection nipype runs before every round of
submissions (0.24 s each with the run's libraries on the heap, 84 s of a 230 s run; the
heap that exists when the run starts is frozen, ``gc.freeze``), and the sleep after every
round, which now ends as soon as a step's result comes back.
"""

from __future__ import annotations

import gc
import signal
import threading
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from nipype.pipeline.plugins import base as _plugin_base
from nipype.pipeline.plugins.multiproc import MultiProcPlugin, process_initializer, run_node

#: the plugins of this process still running (for :func:`terminate_workers`)
_ACTIVE = []
#: workers stopped by a run that ended on a signal or an error, not yet counted
_STOPPED = []


class WorkerDiedError(RuntimeError):
    """A worker process ended without returning its step's result."""


def _initializer(cwd):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    process_initializer(cwd)


def _died(node_name: str, exc: BaseException) -> list:
    """The crash-file traceback (a list of lines, as nipype's ``report_crash`` needs)."""
    return [
        (
            f"{WorkerDiedError.__name__}: the worker process running {node_name} died "
            f"without a result ({type(exc).__name__}: killed by the system, e.g. for memory, "
            "or crashed in a compiled library); rerun with more memory (--mem-gb) or fewer "
            "processes (--nprocs), and check the step's inputs\n"
        )
    ]


class SafeMultiProcPlugin(MultiProcPlugin):
    """``MultiProc`` whose steps fail, rather than wait forever, when a worker dies."""

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        # the pool starts no process before the first step: replace it by one whose workers
        # leave SIGTERM/SIGINT to the main process
        self.pool.shutdown(wait=False)
        mp_context = self.pool._mp_context
        self.pool = ProcessPoolExecutor(
            max_workers=self.processors,
            initializer=_initializer,
            initargs=(self._cwd,),
            mp_context=mp_context,
        )
        self._names = {}
        self._futures = {}
        self._result_came = threading.Event()

    def run(self, graph, config, updatehash=False):
        _ACTIVE.append(self)
        # nipype runs a full garbage collection before every round of submissions and after
        # every step it runs itself (the sinks): with the run's libraries, templates and
        # graph on the heap each took 0.24 s, 84 s of a 230 s participant run during which
        # no step was submitted (cProfile). What exists now lives as long as the run:
        # frozen, the collections only look at what the run allocates.
        gc.collect()
        gc.freeze()
        # nipype's loop sleeps poll_sleep_duration after every round, also when a step has
        # just finished: a worker then idles until the next round (with one process per
        # participant, ~50 s of a 240 s run). The round's sleep ends as soon as a result
        # comes back instead.
        original_sleep = _plugin_base.sleep
        _plugin_base.sleep = self._sleep
        try:
            return super().run(graph, config, updatehash=updatehash)
        except BaseException:
            # a signal (KeyboardInterrupt, Terminated) or an error leaves the scheduling
            # loop: no worker outlives the run that started it. (The clean-up used to be
            # left to the caller, but this run was no longer listed as active by the time
            # the exception reached it: 0 workers stopped, and the interpreter's exit then
            # waited for the running step to finish.)
            _STOPPED.append(self.terminate())
            raise
        finally:
            _plugin_base.sleep = original_sleep
            gc.unfreeze()
            _ACTIVE.remove(self)

    def _sleep(self, seconds):
        self._result_came.wait(seconds)
        self._result_came.clear()

    def _submit_job(self, node, updatehash=False):
        # nipype's own, with the future registered before its callback can run
        self._taskid += 1
        taskid = self._taskid
        if getattr(node.interface, "terminal_output", "") == "stream":
            node.interface.terminal_output = "allatonce"
        self._names[taskid] = node.fullname
        try:
            future = self.pool.submit(run_node, node, updatehash, taskid)
        except BrokenProcessPool as exc:  # an earlier worker died: fail, do not submit
            self._taskresult[taskid] = {
                "result": None,
                "taskid": taskid,
                "traceback": _died(node.fullname, exc),
            }
            self._task_obj[taskid] = None
            return taskid
        self._futures[id(future)] = taskid
        self._task_obj[taskid] = future
        future.add_done_callback(self._async_callback)
        return taskid

    def _async_callback(self, args):
        try:
            result = args.result()
        except BaseException as exc:  # noqa: BLE001 - no result came back: record a failure
            taskid = self._futures.get(id(args))
            if taskid is None:
                return
            if isinstance(exc, BrokenProcessPool):  # the worker process is gone
                tb = _died(self._names.get(taskid, "a step"), exc)
            else:  # the worker raised outside the step (e.g. writing its result failed)
                tb = traceback.format_exception(exc)
            result = {"result": None, "taskid": taskid, "traceback": tb}
        self._taskresult[result["taskid"]] = result
        self._result_came.set()

    def terminate(self, timeout: float = 10.0) -> int:
        """Stop every worker process now (running steps are abandoned); their number."""
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout)
            if p.is_alive():
                p.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)
        return len(procs)


def terminate_workers() -> int:
    """Stop the worker processes of every running :class:`SafeMultiProcPlugin`; the number
    stopped, counting those a run stopped itself when a signal ended it."""
    stopped = sum(plugin.terminate() for plugin in list(_ACTIVE)) + sum(_STOPPED)
    _STOPPED.clear()
    return stopped


__all__ = ["SafeMultiProcPlugin", "WorkerDiedError", "terminate_workers"]
