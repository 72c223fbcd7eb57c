#pragma once
// weave::Semaphore and weave::BoundedSemaphore: counted permits for fibers (asyncio.Semaphore).

#include <cstddef>
#include <limits>
#include <stdexcept>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/loop.hpp"

namespace weave {

/// A counter of permits (asyncio.Semaphore): acquire() takes one, waiting while there is none;
/// release() gives one back.
///
/// Waiters are served in arrival order. release() hands its permit straight to the first waiter
/// instead of adding it to the count, so a later acquire() or try_acquire() never overtakes a
/// waiting fiber. Permits have no owner: any task or callback may release.
///
/// @par Example
/// @code
/// weave::Semaphore connections(10);  // at most 10 requests in flight
/// std::string fetch(const Url& url) {
///   connections.acquire();
///   struct Release { weave::Semaphore& s; ~Release() { s.release(); } } r{connections};
///   return http_get(url);
/// }
/// @endcode
///
/// @par Thread safety
/// Loop-affine: use it from one loop's thread only; try_acquire() and release() may be called
/// from the loop's callbacks. It has no atomics and no OS lock.
///
/// A semaphore must not be destroyed while fibers wait for it.
class Semaphore {
 public:
  /// A semaphore with `initial` permits (asyncio's default is 1).
  /// @par Errors
  /// std::invalid_argument if `initial` is negative.
  explicit Semaphore(std::ptrdiff_t initial = 1)
      : Semaphore(initial, std::numeric_limits<std::ptrdiff_t>::max()) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  /// Takes a permit, waiting in line behind earlier callers if there is none.
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait: a pending cancellation is thrown before queueing, and a
  /// cancellation while waiting throws weave::Cancelled without a permit. If release() handed
  /// this fiber a permit just before the cancellation reached it, the permit goes on to the
  /// next waiter (or back to the count): nothing is lost and no one is skipped. When a permit
  /// is available it is taken at once, without checking for cancellation (as asyncio does).
  /// @par Errors
  /// std::logic_error if called outside a fiber.
  void acquire(SourceLocation where = SourceLocation::current()) {
    detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::Semaphore::acquire");
    if (value_ > 0) [[likely]] {
      --value_;
      return;
    }
    acquire_slow(self, where);
  }

  /// Takes a permit if one is available and returns true; returns false at once otherwise.
  /// Never suspends: callbacks may call it.
  bool try_acquire() noexcept {
    if (value_ == 0) return false;
    --value_;
    return true;
  }

  /// Gives a permit back: to the first waiter if there is one (it runs on a later turn),
  /// otherwise to the count. Never suspends: callbacks may call it.
  ///
  /// @par Errors
  /// std::logic_error from a BoundedSemaphore whose count is already at its initial value
  /// (asyncio's ValueError), or if the count would overflow.
  void release() {
    if (value_ >= bound_) [[unlikely]]
      release_error();
    release_one();
  }

  /// The number of permits available now (0 while fibers wait).
  std::ptrdiff_t value() const noexcept { return value_; }
  /// True if acquire() would wait (no permit is available).
  bool locked() const noexcept { return value_ == 0; }

 protected:
  Semaphore(std::ptrdiff_t initial, std::ptrdiff_t bound) : value_(initial), bound_(bound) {
    if (initial < 0)
      throw std::invalid_argument("weave::Semaphore: the initial value must not be negative");
  }

 private:
  // A waiter's node lives in the waiting fiber's frame: queueing allocates nothing.
  struct Waiter : detail::ListNode {
    explicit Waiter(detail::TaskBase* t) noexcept : task(t) {}
    detail::TaskBase* task;
  };

  // Invariant: waiters_ is empty unless value_ == 0. A release with waiters gives its permit to
  // the first of them, never to the count, so no later caller can take it first.
  void release_one() noexcept {
    if (waiters_.empty()) {
      ++value_;
      return;
    }
    detail::TaskBase* t = static_cast<Waiter*>(waiters_.pop_front())->task;
    detail::LoopAccess::wake(*t->loop, t);
  }

  void acquire_slow(detail::TaskBase* self, SourceLocation where) {
    detail::LoopAccess::checkpoint(self);
    Waiter w(self);
    waiters_.push_back(&w);
    if (!detail::LoopAccess::park(self, where)) {
      if (w.linked())
        waiters_.erase(&w);  // still in line: leaving the line is all there is to do
      else
        release_one();  // release() already gave us its permit: pass it on
      detail::LoopAccess::throw_cancelled(self);
    }
    // Unlinked by release_one(): the permit it released is ours.
  }

  [[noreturn]] void release_error() const {
    if (bound_ == std::numeric_limits<std::ptrdiff_t>::max())
      throw std::logic_error("weave::Semaphore::release: the count would overflow");
    throw std::logic_error(
        "weave::BoundedSemaphore::release: released more times than acquired (the count is "
        "already at its initial value)");
  }

  detail::IntrusiveList waiters_;
  std::ptrdiff_t value_;
  std::ptrdiff_t bound_;  // release() refuses to raise value_ to more than this
};

/// A Semaphore that refuses to be released more times than it was acquired
/// (asyncio.BoundedSemaphore): its count never exceeds the initial value, which catches a
/// double release.
///
/// @par Errors
/// release() throws std::logic_error when the count is already at the initial value; the
/// check holds through a `Semaphore&` too.
class BoundedSemaphore : public Semaphore {
 public:
  /// A semaphore with `initial` permits, which is also the most it can ever have.
  /// @par Errors
  /// std::invalid_argument if `initial` is negative.
  explicit BoundedSemaphore(std::ptrdiff_t initial = 1) : Semaphore(initial, initial) {}
};

}  // namespace weave
