#pragma once
// Helpers shared by the tests that run on virtual time (weave::ManualClock).

#include <gtest/gtest.h>

#include <chrono>

#include "weave/clock.hpp"
#include "weave/loop.hpp"

namespace weave_test {

/// Loop options that read time from `clock`.
inline weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

/// Loop time since the epoch of a ManualClock (which starts at zero).
inline std::chrono::nanoseconds now(const weave::Loop& loop) {
  return loop.time().time_since_epoch();
}

/// Runs the loop until every fiber has finished. A fiber left blocked forever (a lost wake-up)
/// fails the test after a day of virtual time instead of hanging it. Needs a ManualClock.
/// (Each test declares its primitives, and whatever its fibers touch, before its loop: if a
/// test fails with fibers still blocked, the loop's destructor cancels them while all that is
/// still alive.)
inline void run_all(weave::Loop& loop) {
  using namespace std::chrono_literals;
  ASSERT_TRUE(loop.clock().autojump());
  loop.call_later(24h, [&loop] {
    if (loop.live_fibers() != 0)
      ADD_FAILURE() << "fibers still blocked after a day:\n" << loop.dump_tasks();
    loop.stop();
  });
  loop.run();
}

}  // namespace weave_test

#include <optional>

#include "weave/handle.hpp"
#include "weave/task.hpp"

namespace weave_test {

/// The task's value if it is done, or nothing: a test must not wait on a task left blocked (that
/// would hang instead of failing).
template <class T>
std::optional<T> result(const weave::Task<T>& t) {
  if (!t.done()) return std::nullopt;
  return t.get();
}

/// A fixture whose loop runs on virtual time, so that a test that leaves fibers blocked fails
/// instead of hanging (see drive()).
class VirtualLoop : public ::testing::Test {
 protected:
  /// Runs `l` until every fiber has finished. If they all block with nothing left to wake them,
  /// a far-away virtual timer stops the loop instead of letting the test hang.
  static void drive(weave::Loop& l) {
    using namespace std::chrono_literals;
    weave::Handle watchdog = l.call_later(24h * 365, [&l] { l.stop(); });
    l.run();
    watchdog.cancel();
  }
  /// drive(loop), then fails the test if fibers were left blocked.
  void drive() {
    drive(loop);
    EXPECT_EQ(loop.live_fibers(), 0u) << "fibers left blocked:\n" << loop.dump_tasks();
  }
  /// Runs the loop until every fiber has had a chance to reach its first wait.
  void settle() {
    loop.call_soon([this] { loop.stop(); });
    loop.run();
  }
  std::chrono::nanoseconds now() const { return loop.time().time_since_epoch(); }

  weave::ManualClock clock;
  weave::Loop loop{manual_time(clock)};
};

}  // namespace weave_test
