#pragma once
// The loop's clock seam: real monotonic time by default, or a manual clock for tests.

#include <atomic>
#include <chrono>

namespace weave {

/// The loop's time: a monotonic clock (std::chrono::steady_clock's time points).
using TimePoint = std::chrono::steady_clock::time_point;
/// Spans of loop time.
using Duration = std::chrono::steady_clock::duration;

/// Where a loop reads the time. The loop calls now() once per turn and in Loop::time().
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const noexcept = 0;
  /// True if the loop may move this clock forward when every fiber is blocked (virtual time).
  virtual bool autojump() const noexcept { return false; }
  /// Called by the loop when it would sleep until `deadline`; only if autojump() is true.
  virtual void jump_to(TimePoint /*deadline*/) noexcept {}
};

/// The default clock: std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  TimePoint now() const noexcept override { return std::chrono::steady_clock::now(); }
};

/// Virtual time for tests (Trio's MockClock, tokio's paused time).
///
/// Time moves only when advance() is called or, with autojump on (the default), when the loop
/// has nothing ready to run: it then jumps straight to the next timer instead of sleeping. A
/// test of a one-hour timeout takes microseconds and cannot flake.
///
/// @par Thread safety
/// now() and advance() may be called from any thread.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(bool autojump = true) noexcept : autojump_(autojump) {}

  TimePoint now() const noexcept override {
    return TimePoint(Duration(ticks_.load(std::memory_order_acquire)));
  }
  bool autojump() const noexcept override { return autojump_; }
  void jump_to(TimePoint deadline) noexcept override {
    auto want = deadline.time_since_epoch().count();
    auto cur = ticks_.load(std::memory_order_relaxed);
    while (cur < want && !ticks_.compare_exchange_weak(cur, want, std::memory_order_acq_rel)) {
    }
  }

  /// Moves time forward by `d` (timers that expire fire on the loop's next turn).
  void advance(Duration d) noexcept { ticks_.fetch_add(d.count(), std::memory_order_acq_rel); }
  /// Turns jumping to the next timer on or off.
  void set_autojump(bool on) noexcept { autojump_ = on; }

 private:
  std::atomic<Duration::rep> ticks_{0};
  bool autojump_;
};

}  // namespace weave
