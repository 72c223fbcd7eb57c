// Embedding a loop in another event loop: the pollable handle, a non-blocking turn, and when the
// next one is due (see "Embedding in another event loop" in loop.hpp).

#include <stdexcept>
#include <utility>

#include "internal.hpp"
#include "weave/loop.hpp"

namespace weave {

int Loop::native_handle() const noexcept { return epoll_fd_; }

// The loop running for one turn of an outer loop (run_nowait, run_woken), on this thread.
struct Loop::OneTurnScope {
  explicit OneTurnScope(Loop& loop) noexcept : l(loop) {
    l.running_ = true;
    l.stopping_ = false;
    detail::set_running_loop(&l);
    // A goal that is always reached: when the turn's budget runs out, a fiber switches back
    // here instead of starting the next turn itself (take_next_fiber), so exactly one turn runs
    // and the outer loop gets the thread back.
    l.goal_ = [](void*) { return true; };
    l.goal_arg_ = nullptr;
    l.goal_dirty_ = true;
  }
  ~OneTurnScope() {
    l.running_ = false;
    l.goal_ = nullptr;
    detail::set_running_loop(nullptr);
  }
  OneTurnScope(const OneTurnScope&) = delete;
  OneTurnScope& operator=(const OneTurnScope&) = delete;
  /// Whether stop() was called during the turn; clears it.
  bool take_stop() noexcept { return std::exchange(l.stopping_, false); }
  Loop& l;
};

bool Loop::run_nowait(bool check_io) {
  check_can_run("run_nowait on a closed loop", "run_nowait on a loop that is already running");
  OneTurnScope turn(*this);
  // poll(0) before the turn, as a blocking turn polls before it runs: the posts and I/O events
  // that made native_handle() readable are taken, and the eventfd is cleared.
  if (check_io) poll(0);
  begin_turn(/*may_block=*/false);
  run_budget();
  return !turn.take_stop();
}

bool Loop::run_woken(detail::TaskBase* t, bool& stopped) {
  // The conditions under which this is the same as wake(t) + run_nowait(false) except for where
  // the turn boundary falls (see LoopAccess::run_woken): nothing else ready, so `t` would have
  // been first in that turn anyway. The thread is the caller's to check (it knows it is on the
  // loop's thread: the inbox's owner).
  if (running_ || closed_ || ready_count_ != 0 || t->state != detail::TaskState::Suspended ||
      detail::running_loop_slot() != nullptr)
    return false;
  OneTurnScope turn(*this);
  turn_budget_ = 0;  // (already: a turn's budget never exceeds the ready count)
  t->state = detail::TaskState::Ready;
  run_fiber(t);
  stopped = turn.take_stop();
  return true;
}

std::optional<Duration> Loop::poll_timeout() const noexcept {
  if (ready_count_ > 0 || inbox_->has_items()) return Duration::zero();
  if (timers_.empty()) return std::nullopt;
  // Virtual time: the next run_nowait() jumps the clock, so there is nothing to wait for.
  if (clock_->autojump()) return Duration::zero();
  const Duration wait = timers_.top()->deadline - clock_->now();
  if (wait <= Duration::zero()) return Duration::zero();
  // A manual clock without autojump moves only when told: waiting on it makes no sense (the
  // same rule as the loop's own idle wait).
  if (clock_ != &steady_) return std::nullopt;
  return wait;
}

}  // namespace weave
