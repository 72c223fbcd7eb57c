#include "weave/wait_for.hpp"

namespace weave::detail {

void wait_for_task(TaskBase* self, const AnyTask& task, Duration timeout, SourceLocation where) {
  bool timed_out = false;
  try {
    CancelScope scope(deadline_after(*self->loop, timeout));
    try {
      task.join(where);
    } catch (const Cancelled& c) {
      if (!scope.owns(c)) throw;
      timed_out = true;
    }
  } catch (const Cancelled&) {
    // The caller was cancelled (Task::cancel() or an enclosing scope). As asyncio does, the task
    // is cancelled too, and the caller leaves only once it has finished, so that nothing the
    // task started is still running unobserved. The shield keeps a second cancellation from
    // cutting that wait short; it is delivered at the caller's next checkpoint.
    AnyTask(task).cancel();
    shield([&] { task.join(where); });
    throw;
  }
  if (!timed_out) return;
  AnyTask(task).cancel();
  shield([&] { task.join(where); });
  if (task.cancelled())
    throw TimeoutError("weave::wait_for: the task did not finish within the timeout");
  // The task finished anyway (at the deadline itself, before the cancellation reached it, or it
  // caught Cancelled and returned): the caller gets its value or its exception.
}

}  // namespace weave::detail
