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
