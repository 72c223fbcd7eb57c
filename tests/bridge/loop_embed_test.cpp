// Loop's embedding API (native_handle, run_nowait, poll_timeout, alive): a weave loop driven by
// an outer event loop, here a hand-written poll(2) loop, which is all any embedder needs.

#include "weave/loop.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "virtual_time.hpp"
#include "weave/future.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Duration;
using weave::Loop;

bool readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

TEST(LoopEmbed, NativeHandleIsReadableOnlyWhileAPostWaits) {
  Loop loop;
  ASSERT_GE(loop.native_handle(), 0);
  EXPECT_FALSE(readable(loop.native_handle()));
  bool ran = false;
  std::thread([&] { loop.call_soon_threadsafe([&] { ran = true; }); }).join();
  EXPECT_TRUE(readable(loop.native_handle(), 1000));
  EXPECT_TRUE(loop.run_nowait());
  EXPECT_TRUE(ran);
  EXPECT_FALSE(readable(loop.native_handle())) << "run_nowait(true) clears the readiness";
}

TEST(LoopEmbed, RunNowaitRunsOneTurnAndNeverBlocks) {
  Loop loop;
  std::vector<std::string> order;
  loop.spawn([&] {
    order.push_back("a1");
    weave::this_fiber::yield();
    order.push_back("a2");
  });
  loop.call_soon([&] { order.push_back("cb"); });
  EXPECT_TRUE(loop.run_nowait());
  // Only what was ready when the turn began: the fiber's second slice waits for the next turn.
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "cb"}));
  EXPECT_EQ(loop.poll_timeout(), Duration::zero());
  EXPECT_TRUE(loop.run_nowait(false));
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "cb", "a2"}));
  EXPECT_FALSE(loop.alive());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(loop.run_nowait());  // nothing to do: returns at once
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST(LoopEmbed, PollTimeoutFollowsReadyWorkAndTimers) {
  Loop loop;  // real time
  EXPECT_EQ(loop.poll_timeout(), std::nullopt) << "idle: only a post or I/O can bring work";
  EXPECT_FALSE(loop.alive());
  auto h = loop.call_later(10s, [] {});
  auto wait = loop.poll_timeout();
  ASSERT_TRUE(wait);
  EXPECT_GT(*wait, 9s);
  EXPECT_LE(*wait, 10s);
  EXPECT_TRUE(loop.alive());
  loop.call_soon([] {});
  EXPECT_EQ(loop.poll_timeout(), Duration::zero());
  h.cancel();
  loop.run_nowait();
  EXPECT_EQ(loop.poll_timeout(), std::nullopt);
}

TEST(LoopEmbed, APostFromAnotherThreadMakesPollTimeoutZero) {
  Loop loop;
  std::thread([&] { loop.call_soon_threadsafe([] {}); }).join();
  EXPECT_EQ(loop.poll_timeout(), Duration::zero());
  EXPECT_TRUE(loop.alive());
}

TEST(LoopEmbed, OnVirtualTimeATurnJumpsToTheNextTimer) {
  weave::ManualClock clock;
  Loop loop(weave_test::manual_time(clock));
  bool fired = false;
  loop.call_later(1h, [&] { fired = true; });
  EXPECT_EQ(loop.poll_timeout(), Duration::zero()) << "nothing to wait for in virtual time";
  loop.run_nowait(false);
  loop.run_nowait(false);
  EXPECT_TRUE(fired);
  EXPECT_EQ(weave_test::now(loop), 1h);
}

TEST(LoopEmbed, AManualClockWithoutAutojumpGivesNoTimeout) {
  weave::ManualClock clock(/*autojump=*/false);
  Loop loop(weave_test::manual_time(clock));
  loop.call_later(1s, [] {});
  EXPECT_EQ(loop.poll_timeout(), std::nullopt);
  clock.advance(1s);
  EXPECT_EQ(loop.poll_timeout(), Duration::zero());
}

TEST(LoopEmbed, StopDuringATurnIsReported) {
  Loop loop;
  loop.call_soon([&] { loop.stop(); });
  EXPECT_FALSE(loop.run_nowait());
  EXPECT_TRUE(loop.run_nowait()) << "stop() counts only for the turn it was called in";
}

TEST(LoopEmbed, MisuseIsALogicError) {
  Loop loop;
  loop.call_soon([&] { EXPECT_THROW(loop.run_nowait(), std::logic_error); });
  loop.run();
  std::thread([&] { EXPECT_THROW(loop.run_nowait(), std::logic_error); }).join();
  Loop other;
  other.call_soon([&] { EXPECT_THROW(loop.run_nowait(), std::logic_error); });
  other.run();
  loop.close();
  EXPECT_THROW(loop.run_nowait(), std::logic_error);
  EXPECT_EQ(loop.native_handle(), -1);
}

// A whole outer loop in a few lines: poll(2) on the handle, no longer than poll_timeout().
void drive_with_poll(Loop& loop) {
  while (loop.alive()) {
    const std::optional<Duration> wait = loop.poll_timeout();
    int ms = -1;
    if (wait) ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*wait).count());
    const bool io = readable(loop.native_handle(), ms);
    if (!loop.run_nowait(io)) return;
  }
}

TEST(LoopEmbed, AHandWrittenOuterLoopRunsFibersTimersAndPostsFromThreads) {
  Loop loop;  // real time, short sleeps
  std::thread poster;
  auto task = loop.spawn([&] {
    weave::this_fiber::sleep_for(2ms);
    weave::Promise<int> p;
    auto f = p.get_future();
    poster = std::thread([p = std::move(p)]() mutable { p.set_value(41); });
    return f.get() + 1;
  });
  drive_with_poll(loop);
  poster.join();
  ASSERT_TRUE(task.done());
  EXPECT_EQ(task.get(), 42);
}

}  // namespace
