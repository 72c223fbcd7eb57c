// Virtual time: a ManualClock with autojump makes long sleeps instant and schedules exactly
// reproducible.

#include "weave/clock.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Duration;
using weave::Loop;
using weave::ManualClock;
using weave::TimePoint;

Loop::Options on(ManualClock& clock, std::size_t stack_size = 256 * 1024) {
  Loop::Options options;  // (a designated initializer would warn about the unnamed fields)
  options.clock = &clock;
  options.stack_size = stack_size;
  return options;
}

TEST(VirtualTime, AFiberSleepingAnHourFinishesAtOnceAndTimeMovesByExactlyAnHour) {
  const auto wall0 = std::chrono::steady_clock::now();
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  Duration slept{};
  auto task = loop.spawn([&] {
    const TimePoint before = loop.time();
    weave::this_fiber::sleep_for(1h);
    slept = loop.time() - before;
  });
  loop.run();
  const auto wall = std::chrono::steady_clock::now() - wall0;

  EXPECT_TRUE(task.done());
  EXPECT_EQ(slept, 1h);
  EXPECT_EQ(loop.time() - t0, 1h);
  EXPECT_LT(wall, 1s) << "virtual time must not wait in real time";
}

TEST(VirtualTime, ADayOfHourlySleepsTakesNoRealTime) {
  const auto wall0 = std::chrono::steady_clock::now();
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<Duration> wakeups;
  loop.spawn([&] {
    for (int i = 0; i < 24; ++i) {
      weave::this_fiber::sleep_for(1h);
      wakeups.push_back(loop.time() - t0);
    }
  });
  loop.run();
  const auto wall = std::chrono::steady_clock::now() - wall0;

  ASSERT_EQ(wakeups.size(), 24u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(wakeups[i], std::chrono::hours(i + 1));
  EXPECT_LT(wall, 1s);
}

TEST(VirtualTime, SleepUntilWakesExactlyAtTheDeadline) {
  ManualClock clock;
  clock.advance(7s);  // not starting at zero
  Loop loop(on(clock));
  const TimePoint deadline = loop.time() + 90min + 250ms;
  TimePoint woke{};
  loop.spawn([&] {
    weave::this_fiber::sleep_until(deadline);
    woke = loop.time();
  });
  loop.run();
  EXPECT_EQ(woke - deadline, Duration::zero());
  EXPECT_EQ(loop.time() - deadline, Duration::zero());
}

TEST(VirtualTime, SleepUntilAPastTimeOnlyYields) {
  ManualClock clock;
  clock.advance(1h);
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::string> order;
  loop.spawn([&] {
    order.push_back("a");
    weave::this_fiber::sleep_until(t0 - 1s);
    order.push_back("a again");
  });
  loop.spawn([&] { order.push_back("b"); });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "a again"}));
  EXPECT_EQ(loop.time() - t0, Duration::zero());
}

TEST(VirtualTime, SleepForZeroOnlyYields) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::string> order;
  loop.spawn([&] {
    order.push_back("a");
    weave::this_fiber::sleep_for(0s);
    order.push_back("a again");
  });
  loop.spawn([&] { order.push_back("b"); });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "a again"}));
  EXPECT_EQ(loop.time() - t0, Duration::zero());
}

TEST(VirtualTime, SleepersWakeInDeadlineOrderAtTheirOwnDeadlines) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::pair<int, Duration>> woke;
  const int delays_s[] = {30, 10, 20, 10, 5};
  for (int i = 0; i < 5; ++i) {
    loop.spawn([&, i] {
      weave::this_fiber::sleep_for(std::chrono::seconds(delays_s[i]));
      woke.emplace_back(i, loop.time() - t0);
    });
  }
  loop.run();

  std::vector<std::pair<int, Duration>> expected{{4, 5s}, {1, 10s}, {3, 10s}, {2, 20s}, {0, 30s}};
  EXPECT_EQ(woke, expected);
}

TEST(VirtualTime, TimeJumpsOnlyWhenEveryFiberIsBlocked) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<Duration> busy_saw;
  Duration sleeper_woke{};
  loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    sleeper_woke = loop.time() - t0;
  });
  loop.spawn([&] {
    for (int i = 0; i < 50; ++i) {
      busy_saw.push_back(loop.time() - t0);
      weave::this_fiber::yield();
    }
  });
  loop.run();

  ASSERT_EQ(busy_saw.size(), 50u);
  for (Duration d : busy_saw) EXPECT_EQ(d, Duration::zero());
  EXPECT_EQ(sleeper_woke, 1s);
}

// ---- Determinism ------------------------------------------------------------------------------

constexpr int kFibers = 10000;

// Durations in whole milliseconds from a fixed seed, in a small range: many fibers share a
// deadline.
std::vector<int> random_delays_ms(std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> ms(1, 200);
  std::vector<int> delays(kFibers);
  for (int& d : delays) d = ms(rng);
  return delays;
}

// Spawns one fiber per delay on a fresh loop; each appends its index when it wakes.
std::vector<int> wake_order(const std::vector<int>& delays_ms, Duration* elapsed = nullptr) {
  ManualClock clock;
  Loop loop(on(clock, 32 * 1024));
  const TimePoint t0 = loop.time();
  std::vector<int> order;
  order.reserve(delays_ms.size());
  for (int i = 0; i < static_cast<int>(delays_ms.size()); ++i) {
    loop.spawn([&order, i, d = delays_ms[i]] {
      weave::this_fiber::sleep_for(std::chrono::milliseconds(d));
      order.push_back(i);
    });
  }
  loop.run();
  if (elapsed) *elapsed = loop.time() - t0;
  return order;
}

TEST(VirtualTimeDeterminism, TheSameScheduleWakesFibersInTheSameOrderOnFreshLoops) {
  const std::vector<int> delays = random_delays_ms(20240229);
  const std::vector<int> first = wake_order(delays);
  const std::vector<int> second = wake_order(delays);

  ASSERT_EQ(first.size(), static_cast<std::size_t>(kFibers));
  EXPECT_EQ(first, second);
}

TEST(VirtualTimeDeterminism, FibersWakeSortedByDeadlineThenSpawnOrder) {
  const std::vector<int> delays = random_delays_ms(42);
  // Sanity: the schedule really is full of ties.
  std::vector<int> distinct = delays;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  ASSERT_LT(distinct.size(), delays.size() / 10);

  Duration elapsed{};
  const std::vector<int> order = wake_order(delays, &elapsed);

  std::vector<int> expected(kFibers);
  std::iota(expected.begin(), expected.end(), 0);
  std::stable_sort(expected.begin(), expected.end(),
                   [&](int a, int b) { return delays[a] < delays[b]; });
  EXPECT_EQ(order, expected);
  EXPECT_EQ(elapsed, std::chrono::milliseconds(distinct.back()));
}

TEST(VirtualTimeDeterminism, RepeatedSleepsInterleaveTheSameWayEveryTime) {
  // Each fiber sleeps three random times: the interleaving depends on every earlier wake-up,
  // and must still be the same on a fresh loop.
  auto run_once = [] {
    ManualClock clock;
    Loop loop(on(clock, 32 * 1024));
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> ms(0, 20);
    std::vector<std::vector<int>> delays(2000, std::vector<int>(3));
    for (auto& per_fiber : delays)
      for (int& d : per_fiber) d = ms(rng);
    std::vector<int> log;
    for (int i = 0; i < 2000; ++i) {
      loop.spawn([&log, &delays, i] {
        for (int round = 0; round < 3; ++round) {
          weave::this_fiber::sleep_for(std::chrono::milliseconds(delays[i][round]));
          log.push_back(i * 3 + round);
        }
      });
    }
    loop.run();
    return log;
  };
  const std::vector<int> first = run_once();
  const std::vector<int> second = run_once();
  ASSERT_EQ(first.size(), 6000u);
  EXPECT_EQ(first, second);
}

}  // namespace
