// Debug mode: reports of callbacks and fiber slices that hold the loop too long, the task dump,
// and the WEAVE_DEBUG environment variable.

#include "weave/loop.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "weave/clock.hpp"
#include "weave/future.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Loop;
using weave::ManualClock;
using weave::SpawnOptions;

// Holds the loop for `d` of real time without yielding.
void busy_wait(std::chrono::steady_clock::duration d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

Loop::Options debug_options(std::optional<bool> debug, weave::Duration slow,
                            ManualClock* clock = nullptr) {
  Loop::Options options;  // (a designated initializer would warn about the unnamed fields)
  options.debug = debug;
  options.slow_callback_duration = slow;
  options.clock = clock;
  return options;
}

// Collects what the loop reports in debug mode.
struct Reports {
  std::vector<std::string> lines;
  void attach(Loop& loop) {
    loop.set_debug_log([this](std::string_view s) { lines.emplace_back(s); });
  }
  int mentioning(const std::string& what) const {
    int n = 0;
    for (const auto& l : lines) n += l.find(what) != std::string::npos;
    return n;
  }
};

std::string all(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// ---- Slow callbacks and fiber slices ---------------------------------------------------------

TEST(DebugMode, ReportsACallbackThatHoldsTheLoopTooLong) {
  Loop loop(debug_options(true, 1ms));
  Reports reports;
  reports.attach(loop);
  loop.call_soon([] { busy_wait(5ms); });
  loop.run();

  ASSERT_EQ(reports.lines.size(), 1u) << all(reports.lines);
  EXPECT_NE(reports.lines[0].find("callback"), std::string::npos) << reports.lines[0];
}

TEST(DebugMode, ReportsASlowFiberSliceWithTheTasksName) {
  Loop loop(debug_options(true, 1ms));
  Reports reports;
  reports.attach(loop);
  loop.spawn(SpawnOptions{.name = "hog"}, [] {
    busy_wait(5ms);
    weave::this_fiber::yield();  // the slow slice ends here
  });
  loop.run();

  EXPECT_GE(reports.mentioning("hog"), 1) << all(reports.lines);
}

TEST(DebugMode, ReportsASlowSliceThatEndsTheTask) {
  Loop loop(debug_options(true, 1ms));
  Reports reports;
  reports.attach(loop);
  loop.spawn(SpawnOptions{.name = "hog"}, [] { busy_wait(5ms); });
  loop.run();

  EXPECT_GE(reports.mentioning("hog"), 1) << all(reports.lines);
}

TEST(DebugMode, OnlyTheSlowFiberIsBlamed) {
  Loop loop(debug_options(true, 2ms));
  Reports reports;
  reports.attach(loop);
  loop.spawn(SpawnOptions{.name = "quick"}, [] {
    weave::this_fiber::yield();
    weave::this_fiber::yield();
  });
  loop.spawn(SpawnOptions{.name = "hog"}, [] {
    busy_wait(5ms);
    weave::this_fiber::yield();
  });
  loop.run();

  EXPECT_GE(reports.mentioning("hog"), 1) << all(reports.lines);
  EXPECT_EQ(reports.mentioning("quick"), 0) << all(reports.lines);
}

TEST(DebugMode, DoesNotReportFastCallbacksOrFibers) {
  // The threshold is generous so that a preempted test machine cannot make a trivial callback
  // look slow; a report here means the loop reports regardless of the duration.
  Loop loop(debug_options(true, 50ms));
  Reports reports;
  reports.attach(loop);
  int work = 0;
  for (int i = 0; i < 10; ++i) loop.call_soon([&] { ++work; });
  loop.spawn(SpawnOptions{.name = "quick"}, [&] {
    ++work;
    weave::this_fiber::yield();
    ++work;
  });
  loop.run();

  EXPECT_EQ(work, 12);
  EXPECT_TRUE(reports.lines.empty()) << all(reports.lines);
}

TEST(DebugMode, AThresholdLongerThanTheHoldReportsNothing) {
  Loop loop(debug_options(true, 10s));
  Reports reports;
  reports.attach(loop);
  loop.call_soon([] { busy_wait(5ms); });
  loop.spawn(SpawnOptions{.name = "hog"}, [] { busy_wait(5ms); });
  loop.run();
  EXPECT_TRUE(reports.lines.empty()) << all(reports.lines);
}

TEST(DebugMode, ReportsNothingWhenOff) {
  Loop loop(debug_options(false, 1ms));
  EXPECT_FALSE(loop.debug());
  Reports reports;
  reports.attach(loop);
  loop.call_soon([] { busy_wait(5ms); });
  loop.spawn(SpawnOptions{.name = "hog"}, [] {
    busy_wait(5ms);
    weave::this_fiber::yield();
  });
  loop.run();
  EXPECT_TRUE(reports.lines.empty()) << all(reports.lines);
}

TEST(DebugMode, CanBeSwitchedOnAndOffAtRunTime) {
  Loop loop(debug_options(false, 100ms));
  Reports reports;
  reports.attach(loop);

  loop.set_debug(true);
  loop.set_slow_callback_duration(1ms);
  EXPECT_TRUE(loop.debug());
  EXPECT_EQ(loop.slow_callback_duration(), 1ms);
  loop.call_soon([] { busy_wait(5ms); });
  loop.run();
  EXPECT_EQ(reports.lines.size(), 1u) << all(reports.lines);

  loop.set_debug(false);
  EXPECT_FALSE(loop.debug());
  loop.call_soon([] { busy_wait(5ms); });
  loop.run();
  EXPECT_EQ(reports.lines.size(), 1u) << "reported although debug mode was switched off\n"
                                      << all(reports.lines);
}

TEST(DebugMode, WithoutALogReportsGoToStderr) {
  Loop loop(debug_options(true, 1ms));
  Reports reports;
  reports.attach(loop);
  loop.set_debug_log(nullptr);  // back to the default
  loop.call_soon([] { busy_wait(5ms); });
  testing::internal::CaptureStderr();
  loop.run();
  const std::string err = testing::internal::GetCapturedStderr();

  EXPECT_TRUE(reports.lines.empty());
  EXPECT_NE(err.find("callback"), std::string::npos) << err;
}

// ---- dump_tasks() -------------------------------------------------------------------------

// The line of `dump` that mentions `name`, or "" if none does.
std::string line_of(const std::string& dump, const std::string& name) {
  std::istringstream in(dump);
  std::string line;
  const std::regex word("(^|[^A-Za-z0-9_-])" + name + "($|[^A-Za-z0-9_-])");
  while (std::getline(in, line))
    if (std::regex_search(line, word)) return line;
  return "";
}

bool has_number(const std::string& line, std::uint64_t n) {
  return std::regex_search(line, std::regex("(^|[^0-9])" + std::to_string(n) + "($|[^0-9])"));
}

TEST(DumpTasks, ListsEachLiveTaskWithItsIdNameAndState) {
  ManualClock clock;
  Loop loop(debug_options(std::nullopt, 100ms, &clock));
  auto sleeper =
      loop.spawn(SpawnOptions{.name = "sleeper"}, [] { weave::this_fiber::sleep_for(1h); });
  auto finished = loop.spawn(SpawnOptions{.name = "finisher"}, [] {});
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();  // sleeper suspended, finisher done
  auto fresh = loop.spawn(SpawnOptions{.name = "fresh"}, [] {});

  const std::string dump = loop.dump_tasks();
  const std::string s = line_of(dump, "sleeper");
  const std::string f = line_of(dump, "fresh");
  ASSERT_FALSE(s.empty()) << dump;
  ASSERT_FALSE(f.empty()) << dump;
  EXPECT_TRUE(has_number(s, sleeper.id())) << s;
  EXPECT_TRUE(has_number(f, fresh.id())) << f;
  EXPECT_NE(s.find("suspended"), std::string::npos) << s;
  EXPECT_EQ(f.find("suspended"), std::string::npos) << f;
  EXPECT_TRUE(line_of(dump, "finisher").empty()) << "a finished task is not live\n" << dump;
  EXPECT_TRUE(finished.done());
  loop.run();
}

TEST(DumpTasks, ShowsTheFileAndLineWhereASuspendedTaskWaits) {
  ManualClock clock;
  Loop loop(debug_options(std::nullopt, 100ms, &clock));
  unsigned sleep_line = 0;
  unsigned join_line = 0;
  auto sleeper = loop.spawn(SpawnOptions{.name = "sleeper"}, [&] {
    // clang-format off
    sleep_line = __LINE__; weave::this_fiber::sleep_for(1h);
    // clang-format on
  });
  auto joiner = loop.spawn(SpawnOptions{.name = "joiner"}, [&] {
    // clang-format off
    join_line = __LINE__; sleeper.join();
    // clang-format on
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  ASSERT_NE(sleep_line, 0u);
  ASSERT_NE(join_line, 0u);

  const std::string dump = loop.dump_tasks();
  const std::string file = __FILE__;
  EXPECT_NE(line_of(dump, "sleeper").find(file + ":" + std::to_string(sleep_line)),
            std::string::npos)
      << dump;
  EXPECT_NE(line_of(dump, "joiner").find(file + ":" + std::to_string(join_line)), std::string::npos)
      << dump;
  EXPECT_EQ(sleeper.where().line, sleep_line);
  EXPECT_EQ(joiner.where().line, join_line);
  loop.run();
}

TEST(DumpTasks, NamesAnUnnamedTaskAfterItsId) {
  Loop loop;
  auto task = loop.spawn([] {});
  const std::string dump = loop.dump_tasks();
  EXPECT_EQ(task.name(), "task-" + std::to_string(task.id()));
  EXPECT_FALSE(line_of(dump, "task-" + std::to_string(task.id())).empty()) << dump;
  loop.run();
}

TEST(DumpTasks, ShowsTheCallingTaskAsRunning) {
  Loop loop;
  std::string dump;
  loop.spawn(SpawnOptions{.name = "self"}, [&] { dump = loop.dump_tasks(); });
  loop.run();
  const std::string line = line_of(dump, "self");
  ASSERT_FALSE(line.empty()) << dump;
  EXPECT_NE(line.find("running"), std::string::npos) << line;
}

TEST(DumpTasks, ListsNothingWhenNoTaskIsAlive) {
  Loop loop;
  auto task = loop.spawn(SpawnOptions{.name = "gone"}, [] {});
  loop.run();
  const std::string dump = loop.dump_tasks();
  EXPECT_TRUE(line_of(dump, "gone").empty()) << dump;
}

TEST(DumpTasks, TheStreamOverloadWritesTheSameDump) {
  ManualClock clock;
  Loop loop(debug_options(std::nullopt, 100ms, &clock));
  loop.spawn(SpawnOptions{.name = "sleeper"}, [] { weave::this_fiber::sleep_for(1h); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  std::ostringstream out;
  loop.dump_tasks(out);
  EXPECT_EQ(out.str(), loop.dump_tasks());
  EXPECT_FALSE(line_of(out.str(), "sleeper").empty()) << out.str();
  loop.run();
}

// ---- WEAVE_DEBUG ------------------------------------------------------------------------------

// Sets or unsets WEAVE_DEBUG for one test and restores what was there before.
class ScopedWeaveDebug {
 public:
  explicit ScopedWeaveDebug(const char* value) {
    if (const char* old = std::getenv("WEAVE_DEBUG")) old_ = old;
    if (value)
      ::setenv("WEAVE_DEBUG", value, 1);
    else
      ::unsetenv("WEAVE_DEBUG");
  }
  ScopedWeaveDebug(const ScopedWeaveDebug&) = delete;
  ScopedWeaveDebug& operator=(const ScopedWeaveDebug&) = delete;
  ~ScopedWeaveDebug() {
    if (old_)
      ::setenv("WEAVE_DEBUG", old_->c_str(), 1);
    else
      ::unsetenv("WEAVE_DEBUG");
  }

 private:
  std::optional<std::string> old_;
};

TEST(WeaveDebugEnv, SetToOneTurnsDebugOnForALoopCreatedAfterwards) {
  ScopedWeaveDebug env("1");
  Loop loop;
  EXPECT_TRUE(loop.debug());

  Reports reports;
  reports.attach(loop);
  loop.set_slow_callback_duration(1ms);
  loop.call_soon([] { busy_wait(5ms); });
  loop.run();
  EXPECT_EQ(reports.lines.size(), 1u) << all(reports.lines);
}

TEST(WeaveDebugEnv, UnsetLeavesDebugOff) {
  ScopedWeaveDebug env(nullptr);
  Loop loop;
  EXPECT_FALSE(loop.debug());
}

TEST(WeaveDebugEnv, OtherValuesLeaveDebugOff) {
  for (const char* value : {"0", ""}) {
    ScopedWeaveDebug env(value);
    Loop loop;
    EXPECT_FALSE(loop.debug()) << "WEAVE_DEBUG=" << value;
  }
}

TEST(WeaveDebugEnv, AnExplicitOptionWins) {
  {
    ScopedWeaveDebug env("1");
    Loop loop(debug_options(false, 100ms));
    EXPECT_FALSE(loop.debug());
  }
  {
    ScopedWeaveDebug env(nullptr);
    Loop loop(debug_options(true, 100ms));
    EXPECT_TRUE(loop.debug());
  }
}

TEST(WeaveDebugEnv, IsReadWhenTheLoopIsCreated) {
  ScopedWeaveDebug env(nullptr);
  Loop before;
  ::setenv("WEAVE_DEBUG", "1", 1);
  Loop after;
  EXPECT_FALSE(before.debug());
  EXPECT_TRUE(after.debug());
}

}  // namespace

namespace {

// Regression: in debug mode the loop read every non-fiber ready item as a callback node, but a
// future completed from another thread queues its own wake-up node (UBSan: misaligned access).
TEST(DebugMode, AFutureCompletedFromAnotherThreadIsNotMistakenForACallback) {
  Loop loop(debug_options(true, std::chrono::nanoseconds(0)));
  Reports reports;
  reports.attach(loop);
  weave::Promise<int> p(loop);
  auto f = p.get_future();
  auto t = loop.spawn([&] { return f.get(); });
  std::thread producer([&] { p.set_value(11); });
  EXPECT_EQ(loop.run_until_complete(t), 11);
  producer.join();
  // With a zero threshold everything is "slow": every report must name a real callback site or
  // a fiber, never garbage read from a future's state.
  for (const auto& line : reports.lines)
    EXPECT_TRUE(line.find("callback scheduled at") == std::string::npos ||
                line.find("debug_mode_test.cpp") != std::string::npos)
        << line;
}

}  // namespace
