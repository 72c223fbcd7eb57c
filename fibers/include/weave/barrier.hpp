#pragma once
// weave::Barrier: a rendezvous of a fixed number of fibers, reusable (asyncio.Barrier).

#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/detail/task_base.hpp"
#include "weave/loop.hpp"

namespace weave {

/// Thrown by Barrier::wait() when the barrier is broken (abort()) or reset while waiting
/// (asyncio.BrokenBarrierError).
class BrokenBarrierError : public std::runtime_error {
 public:
  BrokenBarrierError() : std::runtime_error("weave::BrokenBarrierError: the barrier is broken") {}
  using std::runtime_error::runtime_error;
};

/// Makes `parties` fibers wait for each other (asyncio.Barrier): each calls wait(), and all of
/// them go on together once the last one arrives. The barrier then starts a new cycle, so it
/// can be used again and again.
///
/// A fiber that stops waiting (cancelled, or its timeout expired) simply leaves: it no longer
/// counts, and the barrier still needs `parties` fibers to pass. This is asyncio's behaviour,
/// not threading.Barrier's, which breaks the barrier on a timeout; call abort() to get that.
///
/// @par Example
/// @code
/// weave::Barrier start(3);
/// for (int i = 0; i < 3; ++i)
///   weave::spawn([&] {
///     prepare();
///     if (start.wait() == 0) log("all three are ready");  // once per cycle
///     work();
///   });
/// @endcode
///
/// @par Thread safety
/// Loop-affine: use it from one loop's thread only; reset() and abort() may be called from the
/// loop's callbacks.
///
/// A Barrier must not be destroyed while fibers wait on it.
class Barrier {
 public:
  /// A barrier for `parties` fibers.
  /// @par Errors
  /// std::invalid_argument if `parties` is 0.
  explicit Barrier(std::size_t parties) : parties_(parties) {
    if (parties == 0) throw std::invalid_argument("weave::Barrier: parties must be at least 1");
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  /// Waits until `parties` fibers are waiting, then releases them all and returns this fiber's
  /// arrival index in the cycle: 0 for the first to arrive, parties() - 1 for the last, which
  /// returns at once and whose arrival releases the others (they run on a later turn, in
  /// arrival order). A fiber that left the cycle before it completed gives up its place: the
  /// indices of those that pass are always 0 .. parties() - 1.
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait (the last party does not wait): a pending cancellation is
  /// thrown before joining the cycle, and a cancellation while waiting throws weave::Cancelled
  /// and takes the fiber out of the cycle without breaking the barrier. A fiber cancelled after
  /// the cycle completed but before it ran throws Cancelled; the others pass regardless.
  /// @par Errors
  /// weave::BrokenBarrierError if the barrier is broken, or is aborted or reset while this
  /// fiber waits. std::logic_error if called outside a fiber.
  std::size_t wait(SourceLocation where = SourceLocation::current()) {
    detail::TaskBase* self = detail::LoopAccess::require_fiber("weave::Barrier::wait");
    if (broken_) throw BrokenBarrierError();
    if (waiters_.size() + 1 == parties_) {
      // The last party: the cycle is complete. The waiters get their indices in arrival
      // order (the queue's order), so indices stay dense when some waiters left.
      std::size_t index = 0;
      while (detail::ListNode* n = waiters_.pop_front()) {
        auto* w = static_cast<Waiter*>(n);
        w->index = index++;
        w->outcome = Outcome::Passed;
        detail::LoopAccess::wake(*w->task->loop, w->task);
      }
      return index;
    }
    detail::LoopAccess::checkpoint(self);
    Waiter w(self);
    waiters_.push_back(&w);
    if (!detail::LoopAccess::park(self, where)) {
      // Still waiting: leave the cycle. Released (passed or broken): the others were released
      // together with this fiber and owe it nothing; the cancellation wins.
      if (w.linked()) waiters_.erase(&w);
      detail::LoopAccess::throw_cancelled(self);
    }
    if (w.outcome == Outcome::Broken) throw BrokenBarrierError();
    return w.index;
  }

  /// Returns the barrier to its initial, empty state: the fibers waiting now get
  /// BrokenBarrierError, and a broken barrier works again. Never suspends.
  void reset() noexcept {
    release_all_broken();
    broken_ = false;
  }

  /// Breaks the barrier: the fibers waiting now, and every later wait() until reset(), get
  /// BrokenBarrierError. Use it when a party cannot arrive. Never suspends.
  void abort() noexcept {
    broken_ = true;
    release_all_broken();
  }

  /// True after abort() and until reset().
  bool broken() const noexcept { return broken_; }
  /// The number of fibers it takes to pass the barrier.
  std::size_t parties() const noexcept { return parties_; }
  /// The number of fibers waiting in the current cycle.
  std::size_t n_waiting() const noexcept { return waiters_.size(); }

 private:
  enum class Outcome : std::uint8_t { Waiting, Passed, Broken };

  // A waiter's node lives in the waiting fiber's frame; the fiber that releases it writes the
  // outcome there. Invariant: a node is linked exactly while its outcome is Waiting.
  struct Waiter : detail::ListNode {
    explicit Waiter(detail::TaskBase* t) noexcept : task(t) {}
    detail::TaskBase* task;
    std::size_t index = 0;
    Outcome outcome = Outcome::Waiting;
  };

  void release_all_broken() noexcept {
    while (detail::ListNode* n = waiters_.pop_front()) {
      auto* w = static_cast<Waiter*>(n);
      w->outcome = Outcome::Broken;
      detail::LoopAccess::wake(*w->task->loop, w->task);
    }
  }

  detail::IntrusiveList waiters_;  // the current cycle, in arrival order
  std::size_t parties_;
  bool broken_ = false;
};

}  // namespace weave
