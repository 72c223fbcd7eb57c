#pragma once
// weave::Lock: mutual exclusion between the fibers of one loop (asyncio.Lock).

#include <stdexcept>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/loop.hpp"

namespace weave {

class Condition;

/// A mutex for fibers (asyncio.Lock): at most one task holds it; the others wait in line.
///
/// It meets the standard Lockable requirements (lock(), try_lock(), unlock()), so the RAII
/// guards of `<mutex>` are its guards: `std::lock_guard`, `std::unique_lock`,
/// `std::scoped_lock`. Unlike asyncio's lock it has an owner: only the task that took it may
/// release it, which catches the classic "unlocked by the wrong task" bug at once.
///
/// Waiters are served in arrival order. unlock() hands the lock straight to the first waiter,
/// so a task that calls lock() or try_lock() later never overtakes one that is waiting.
///
/// @par Example
/// @code
/// weave::Lock lock;
/// void append(std::vector<int>& log, int v) {
///   std::lock_guard guard(lock);
///   weave::this_fiber::sleep_for(1ms);  // other fibers that call append() wait in lock()
///   log.push_back(v);
/// }
/// @endcode
///
/// @par Thread safety
/// Loop-affine: use it from one loop's thread only (fibers and callbacks of that loop). It has
/// no atomics and no OS lock: an uncontended lock()/unlock() pair is a few loads and stores plus
/// one look-up of the running task.
///
/// A Lock must not be destroyed while fibers wait for it (as for std::mutex): declare it where
/// it outlives the fibers that use it.
class Lock {
 public:
  Lock() noexcept = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// Takes the lock, waiting in line behind earlier callers if another task holds it.
  ///
  /// With `std::lock_guard` the location recorded for dump_tasks() is inside `<mutex>`; call
  /// `lock()` yourself and adopt it (`std::lock_guard g(l, std::adopt_lock)`) to see your line.
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait: a pending cancellation is thrown before queueing, and a
  /// cancellation while waiting makes it throw weave::Cancelled without the lock. If the lock
  /// was handed to this task just before the cancellation reached it, it is handed on to the
  /// next waiter (or freed): a cancelled waiter never keeps or loses the lock. A free lock is
  /// taken at once, without checking for cancellation (asyncio does the same).
  /// @par Errors
  /// std::logic_error if called outside a fiber, or by the task that already holds the lock
  /// (it would wait for itself forever).
  void lock(SourceLocation where = SourceLocation::current()) {
    detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::Lock::lock");
    if (!locked_) [[likely]] {
      locked_ = true;
      set_owner(self);
      return;
    }
    lock_slow(self, where);
  }

  /// Takes the lock if it is free and returns true; returns false at once otherwise (also when
  /// the caller already holds it). Never suspends, so it may be called from a callback: the
  /// loop's callbacks then hold the lock together, and one of them must unlock it.
  bool try_lock() noexcept {
    if (locked_) return false;
    locked_ = true;
    set_owner(detail::LoopAccess::current_task());
    return true;
  }

  /// Releases the lock; if tasks are waiting, the first one gets it (it runs on a later turn).
  ///
  /// @par Errors
  /// std::logic_error if the lock is not held, or held by another task than the caller (a
  /// lock taken by try_lock() in a callback is released from a callback). Thrown from a
  /// guard's destructor, as any exception there, it ends the program with std::terminate.
  void unlock() {
    if (!held_by_caller()) [[unlikely]]
      unlock_error();
    release_to_next();
  }

  /// True while some task (or callback) holds the lock.
  bool locked() const noexcept { return locked_; }

 private:
  friend class Condition;

  // A waiter's node lives in the waiting fiber's frame: queueing allocates nothing.
  struct Waiter : detail::ListNode {
    explicit Waiter(detail::TaskBase* t) noexcept : task(t) {}
    detail::TaskBase* task;
  };

  // Invariant: waiters_ is empty unless locked_. A release with waiters transfers ownership to
  // the first of them without ever clearing locked_, which is what makes barging impossible.
  void release_to_next() noexcept {
    if (waiters_.empty()) {
      locked_ = false;
      set_owner(nullptr);
      return;
    }
    auto* w = static_cast<Waiter*>(waiters_.pop_front());
    set_owner(w->task);
    detail::LoopAccess::wake(*w->task->loop, w->task);
  }

  void set_owner(detail::TaskBase* t) noexcept {
    owner_ = t;
    owner_loop_ = t ? t->loop : nullptr;
  }

  // True if the caller holds the lock. A task owner is checked without looking the running
  // task up in thread-local storage (an out-of-line call that costs more than the rest of
  // lock() and unlock() together): the owner's loop knows which task it is running now, and
  // it is running the owner exactly when the owner is the caller. The owner task itself is not
  // read, since it may be gone if it ended holding the lock; its loop is alive as long as the
  // lock is used from that loop, as a loop-affine object must be.
  bool held_by_caller() const noexcept {
    if (!locked_) return false;
    if (owner_) return detail::LoopAccess::current_task_of(*owner_loop_) == owner_;
    return detail::LoopAccess::current_task() == nullptr;  // held by the loop's callbacks
  }

  void lock_slow(detail::TaskBase* self, SourceLocation where) {
    if (owner_ == self)
      throw std::logic_error(
          "weave::Lock::lock: the calling task already holds the lock (weave::Lock is not "
          "recursive; it would wait for itself forever)");
    detail::LoopAccess::checkpoint(self);
    Waiter w(self);
    waiters_.push_back(&w);
    if (!detail::LoopAccess::park(self, where)) {
      if (w.linked())
        waiters_.erase(&w);  // still in line: leaving the line is all there is to do
      else
        release_to_next();  // unlock() already chose us: the lock is ours to pass on
      detail::LoopAccess::throw_cancelled(self);
    }
    // Unlinked by release_to_next(), which made this task the owner.
  }

  // Takes the lock back for Condition::wait(), which must return (or throw) holding it, even
  // when cancelled (asyncio's rule). A cancellation that wakes the fiber early only sends it
  // back to sleep: it stays pending and Condition::wait() throws it once the lock is held.
  void lock_ignoring_cancellation(detail::TaskBase* self, SourceLocation where) {
    if (!locked_) {
      locked_ = true;
      set_owner(self);
      return;
    }
    Waiter w(self);
    waiters_.push_back(&w);
    do {
      detail::LoopAccess::park(self, where);
    } while (w.linked());
  }

  bool held_by(const detail::TaskBase* t) const noexcept { return locked_ && owner_ == t; }

  [[noreturn]] void unlock_error() const {
    if (!locked_) throw std::logic_error("weave::Lock::unlock: the lock is not held");
    throw std::logic_error(
        "weave::Lock::unlock: the lock is held by another task than the caller; only its "
        "owner may release it");
  }

  detail::IntrusiveList waiters_;
  // The holder: a task, or nullptr for the loop's callbacks (try_lock() outside a fiber).
  detail::TaskBase* owner_ = nullptr;
  Loop* owner_loop_ = nullptr;  // owner_'s loop
  bool locked_ = false;
};

}  // namespace weave
