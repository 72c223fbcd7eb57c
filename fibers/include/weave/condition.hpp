#pragma once
// weave::Condition: a condition variable for fibers, bound to a weave::Lock (asyncio.Condition).

#include <concepts>
#include <cstddef>
#include <limits>
#include <stdexcept>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/lock.hpp"
#include "weave/loop.hpp"

namespace weave {

/// A condition variable for fibers (asyncio.Condition): tasks holding its lock wait until
/// another task notifies them.
///
/// A Condition is bound to one weave::Lock, its own by default or one passed to the
/// constructor (several conditions may share a lock). It is Lockable itself (lock(),
/// try_lock(), unlock() act on that lock), so `std::unique_lock lk(cond)` works. wait()
/// releases the lock, suspends until notified, and takes the lock back before returning.
/// Notified waiters are woken in the order they began to wait. A notification with no one
/// waiting is not remembered.
///
/// @par Example
/// @code
/// weave::Condition cond;
/// std::deque<Job> jobs;
/// void consumer() {
///   std::unique_lock lk(cond);
///   cond.wait([&] { return !jobs.empty(); });
///   Job j = std::move(jobs.front());
///   jobs.pop_front();
///   lk.unlock();
///   run(j);
/// }
/// void producer(Job j) {
///   std::lock_guard lk(cond);
///   jobs.push_back(std::move(j));
///   cond.notify();
/// }
/// @endcode
///
/// @par Thread safety
/// Loop-affine: use it from one loop's thread only. notify() and notify_all() never suspend, so
/// a callback may call them while it holds the lock (taken with try_lock()).
///
/// A Condition must not be destroyed while fibers wait on it.
class Condition {
 public:
  /// A condition with its own lock.
  Condition() noexcept : lock_(&own_) {}
  /// A condition bound to `lock`, which must outlive it.
  explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  /// Takes the condition's lock (see Lock::lock()).
  void lock(SourceLocation where = SourceLocation::current()) { lock_->lock(where); }
  /// Takes the condition's lock if it is free (see Lock::try_lock()).
  bool try_lock() noexcept { return lock_->try_lock(); }
  /// Releases the condition's lock (see Lock::unlock()).
  void unlock() { lock_->unlock(); }
  /// True while the condition's lock is held.
  bool locked() const noexcept { return lock_->locked(); }

  /// Releases the lock, waits until notified, then takes the lock back and returns.
  ///
  /// The caller must hold the lock; it holds it again when wait() returns or throws. As with
  /// any condition variable, check the condition again after waking: the wait(pred) overload
  /// does that loop.
  ///
  /// @par Cancellation
  /// A checkpoint. A pending cancellation is thrown at once, without releasing the lock. A
  /// cancellation while waiting takes the lock back first, then throws weave::Cancelled (as
  /// asyncio does), so the caller's lock guard stays correct. If the fiber had been notified
  /// just before the cancellation reached it, the notification goes on to the next waiter: a
  /// cancelled waiter never swallows a notify() meant for another.
  /// @par Errors
  /// std::logic_error if called outside a fiber or if the calling task does not hold the lock.
  void wait(SourceLocation where = SourceLocation::current()) {
    detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::Condition::wait");
    if (!lock_->held_by(self))
      throw std::logic_error("weave::Condition::wait: the calling task does not hold the lock");
    detail::LoopAccess::checkpoint(self);
    Waiter w(self);
    waiters_.push_back(&w);
    lock_->release_to_next();
    // Whether to throw is decided below, once the lock is held again: a cancellation may also
    // arrive while waiting for the lock, and the lock must be retaken in both cases.
    detail::LoopAccess::park(self, where);
    const bool notified = !w.linked();
    if (!notified) waiters_.erase(&w);
    lock_->lock_ignoring_cancellation(self, where);
    if (detail::LoopAccess::cancel_pending(self)) [[unlikely]] {
      if (notified) wake_waiters(1);  // the notification was meant for a waiter that proceeds
      detail::LoopAccess::throw_cancelled(self);
    }
  }

  /// Waits until `pred()` is true (asyncio's wait_for): checks it, and while it is false, waits
  /// for a notification and checks again. Returns the last value of `pred()`.
  ///
  /// @par Cancellation
  /// As wait(). `pred` is always called with the lock held.
  /// @par Errors
  /// As wait(), checked before the first call to `pred`.
  template <class Pred>
  requires std::invocable<Pred&>
  auto wait(Pred pred, SourceLocation where = SourceLocation::current()) {
    detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::Condition::wait");
    if (!lock_->held_by(self))
      throw std::logic_error("weave::Condition::wait: the calling task does not hold the lock");
    auto result = pred();
    while (!result) {
      wait(where);
      result = pred();
    }
    return result;
  }

  /// Wakes up to `n` waiters, the longest-waiting first. Each one returns from wait() once it
  /// has the lock again, so not before the notifier releases it.
  ///
  /// @par Errors
  /// std::logic_error if the caller does not hold the lock (asyncio's rule: notifying without
  /// the lock is almost always a lost-wake-up bug).
  void notify(std::size_t n = 1) {
    if (!lock_->held_by_caller())
      throw std::logic_error("weave::Condition::notify: the caller does not hold the lock");
    wake_waiters(n);
  }

  /// Wakes every waiter.
  ///
  /// @par Errors
  /// As notify().
  void notify_all() { notify(std::numeric_limits<std::size_t>::max()); }

 private:
  // A waiter's node lives in the waiting fiber's frame: waiting allocates nothing. A waiter
  // that is no longer linked was notified.
  struct Waiter : detail::ListNode {
    explicit Waiter(detail::TaskBase* t) noexcept : task(t) {}
    detail::TaskBase* task;
  };

  void wake_waiters(std::size_t n) noexcept {
    for (; n > 0 && !waiters_.empty(); --n) {
      detail::TaskBase* t = static_cast<Waiter*>(waiters_.pop_front())->task;
      detail::LoopAccess::wake(*t->loop, t);
    }
  }

  Lock own_;  // unused when bound to another lock
  Lock* lock_;
  detail::IntrusiveList waiters_;
};

}  // namespace weave
