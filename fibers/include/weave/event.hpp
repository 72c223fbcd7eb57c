#pragma once
// weave::Event: a flag that fibers can wait for (asyncio.Event).

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/loop.hpp"

namespace weave {

/// A flag, initially clear, that fibers wait to become set (asyncio.Event).
///
/// set() wakes every waiting fiber, in the order they began to wait; clear() makes later calls
/// to wait() block again. A fiber woken by set() returns from wait() even if the event was
/// cleared again before it ran.
///
/// @par Example
/// @code
/// weave::Event ready;
/// auto worker = weave::spawn([&] { ready.wait(); start_serving(); });
/// load_configuration();
/// ready.set();
/// @endcode
///
/// @par Thread safety
/// Loop-affine: use it from one loop's thread only; set() and clear() may be called from the
/// loop's callbacks. From another thread, post the call: `loop.call_soon_threadsafe([&] {
/// event.set(); })`.
///
/// An Event must not be destroyed while fibers wait for it.
class Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// Sets the flag and wakes every waiter (they run on a later turn). Does nothing if it is
  /// already set. Never suspends: callbacks may call it.
  void set() noexcept {
    if (set_) return;
    set_ = true;
    while (detail::ListNode* n = waiters_.pop_front()) {
      detail::TaskBase* t = static_cast<Waiter*>(n)->task;
      detail::LoopAccess::wake(*t->loop, t);
    }
  }

  /// Clears the flag; fibers already woken by set() are not affected.
  void clear() noexcept { set_ = false; }

  /// True while the flag is set.
  bool is_set() const noexcept { return set_; }

  /// Returns at once if the flag is set; otherwise suspends the calling fiber until set().
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait: a pending cancellation is thrown before waiting, and a
  /// cancellation while waiting throws weave::Cancelled. A fiber cancelled after set() woke it
  /// but before it ran throws Cancelled too; set() woke everyone, so no one else misses it.
  /// @par Errors
  /// std::logic_error if called outside a fiber.
  void wait(SourceLocation where = SourceLocation::current()) {
    detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::Event::wait");
    if (set_) return;
    detail::LoopAccess::checkpoint(self);
    Waiter w(self);
    waiters_.push_back(&w);
    if (!detail::LoopAccess::park(self, where)) {
      if (w.linked()) waiters_.erase(&w);
      detail::LoopAccess::throw_cancelled(self);
    }
  }

 private:
  // A waiter's node lives in the waiting fiber's frame: waiting allocates nothing.
  struct Waiter : detail::ListNode {
    explicit Waiter(detail::TaskBase* t) noexcept : task(t) {}
    detail::TaskBase* task;
  };

  detail::IntrusiveList waiters_;  // empty whenever set_ is true
  bool set_ = false;
};

}  // namespace weave
