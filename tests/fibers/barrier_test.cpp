// weave::Barrier: asyncio.Barrier. All parties pass together with dense arrival indices, the
// barrier is cyclic, abort() and reset() break the waiters, and a cancelled or timed-out waiter
// leaves the cycle without breaking the barrier.

#include "weave/barrier.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using weave::this_fiber::sleep_for;

using weave_test::manual_time;
using weave_test::now;
using weave_test::run_all;

// What one party saw: its arrival index and when it passed.
struct Pass {
  std::string who;
  std::size_t index;
  nanoseconds at;
  bool operator==(const Pass&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Pass& p) {
  return out << "{" << p.who << ", index " << p.index << ", at " << p.at.count() << "ns}";
}

// ---- Passing -----------------------------------------------------------------------------------

TEST(Barrier, ZeroPartiesThrowsInvalidArgument) {
  EXPECT_THROW(weave::Barrier(0), std::invalid_argument);
}

TEST(Barrier, BrokenBarrierErrorIsARuntimeError) {
  static_assert(std::is_base_of_v<std::runtime_error, weave::BrokenBarrierError>);
  weave::BrokenBarrierError e;
  EXPECT_NE(std::string(e.what()).find("broken"), std::string::npos);
}

TEST(Barrier, ASinglePartyPassesAtOnceWithIndexZero) {
  weave::ManualClock clock;
  weave::Barrier barrier(1);
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    EXPECT_EQ(barrier.wait(), 0u);
    EXPECT_EQ(barrier.wait(), 0u);
    log.push_back("a");
  });
  loop.spawn([&] { log.push_back("b"); });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b"}));
}

TEST(Barrier, ReleasesEveryPartyWhenTheLastArrivesWithArrivalIndices) {
  weave::ManualClock clock;
  weave::Barrier barrier(3);
  std::vector<Pass> passes;
  std::vector<std::size_t> waiting_seen;
  weave::Loop loop(manual_time(clock));
  // Spawned a, b, c; they arrive in the order c (1 s), a (2 s), b (3 s).
  for (auto [who, arrive] : {std::pair{"a", 2s}, {"b", 3s}, {"c", 1s}})
    loop.spawn([&, who = std::string(who), arrive = arrive] {
      sleep_for(arrive);
      waiting_seen.push_back(barrier.n_waiting());
      std::size_t index = barrier.wait();
      passes.push_back({who, index, now(loop)});
    });
  run_all(loop);
  // The last to arrive returns at once; the others run after it, in arrival order.
  EXPECT_EQ(passes, (std::vector<Pass>{{"b", 2, 3s}, {"c", 0, 3s}, {"a", 1, 3s}}));
  EXPECT_EQ(waiting_seen, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_EQ(barrier.parties(), 3u);
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, IsReusableCycleAfterCycle) {
  weave::ManualClock clock;
  weave::Barrier barrier(3);
  constexpr int kRounds = 4;
  weave::Loop loop(manual_time(clock));
  // indices[r] collects the indices handed out in round r; passed_at[r] the times.
  std::vector<std::vector<std::size_t>> indices(kRounds);
  std::vector<std::vector<nanoseconds>> passed_at(kRounds);
  for (int f = 0; f < 3; ++f)
    loop.spawn([&, f] {
      for (int r = 0; r < kRounds; ++r) {
        sleep_for(std::chrono::seconds((f + r) % 3 + 1));  // a different last party each round
        indices[r].push_back(barrier.wait());
        passed_at[r].push_back(now(loop));
      }
    });
  run_all(loop);
  nanoseconds previous{0};
  for (int r = 0; r < kRounds; ++r) {
    std::sort(indices[r].begin(), indices[r].end());
    EXPECT_EQ(indices[r], (std::vector<std::size_t>{0, 1, 2})) << "round " << r;
    ASSERT_EQ(passed_at[r].size(), 3u);
    EXPECT_EQ(passed_at[r][0], passed_at[r][1]) << "round " << r;
    EXPECT_EQ(passed_at[r][0], passed_at[r][2]) << "round " << r;
    EXPECT_EQ(passed_at[r][0] - previous, 3s) << "each round waits for its slowest party";
    previous = passed_at[r][0];
  }
}

TEST(Barrier, APartyThatPassesAndWaitsAgainJoinsTheNextCycle) {
  weave::ManualClock clock;
  weave::Barrier barrier(2);
  std::vector<Pass> passes;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    passes.push_back({"a1", barrier.wait(), now(loop)});
    passes.push_back({"a2", barrier.wait(), now(loop)});  // at once: laps the other party
  });
  loop.spawn([&] {
    sleep_for(1s);
    passes.push_back({"b1", barrier.wait(), now(loop)});
    sleep_for(1s);
    passes.push_back({"b2", barrier.wait(), now(loop)});
  });
  run_all(loop);
  EXPECT_EQ(passes,
            (std::vector<Pass>{{"b1", 1, 1s}, {"a1", 0, 1s}, {"b2", 1, 2s}, {"a2", 0, 2s}}));
}

TEST(Barrier, DumpTasksShowsWhereAFiberWaitsAtTheBarrier) {
  weave::ManualClock clock;
  weave::Barrier barrier(2);
  unsigned line = 0;
  weave::Loop loop(manual_time(clock));
  auto waiter = loop.spawn(weave::SpawnOptions{.name = "waiter"}, [&] {
    // clang-format off
    line = __LINE__; barrier.wait();
    // clang-format on
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  ASSERT_NE(line, 0u);
  EXPECT_EQ(waiter.where().line, line);
  const std::string dump = loop.dump_tasks();
  EXPECT_NE(dump.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos)
      << dump;
  loop.spawn([&] { barrier.wait(); });
  run_all(loop);
}

// ---- Abort and reset ---------------------------------------------------------------------------

TEST(Barrier, AbortBreaksTheWaitersAndEveryLaterWaitUntilReset) {
  weave::ManualClock clock;
  weave::Barrier barrier(3);
  std::vector<nanoseconds> broken_at;
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < 2; ++i)
    loop.spawn([&] {
      try {
        barrier.wait();
        ADD_FAILURE() << "the barrier was aborted";
      } catch (const weave::BrokenBarrierError&) {
        broken_at.push_back(now(loop));
      }
    });
  loop.spawn([&] {
    sleep_for(1s);
    barrier.abort();
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_THROW(barrier.wait(), weave::BrokenBarrierError) << "broken until reset";
    sleep_for(1s);
    barrier.reset();
    EXPECT_FALSE(barrier.broken());
    for (int i = 0; i < 2; ++i) weave::spawn([&] { barrier.wait(); });
    sleep_for(1s);
    EXPECT_EQ(barrier.wait(), 2u) << "works again after reset";
  });
  run_all(loop);
  EXPECT_EQ(broken_at, (std::vector<nanoseconds>{1s, 1s}));
}

TEST(Barrier, ResetBreaksTheCurrentWaitersAndStartsAFreshCycle) {
  weave::ManualClock clock;
  weave::Barrier barrier(3);
  int broken = 0;
  std::vector<std::size_t> fresh;
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < 2; ++i)
    loop.spawn([&] {
      EXPECT_THROW(barrier.wait(), weave::BrokenBarrierError);
      ++broken;
    });
  loop.spawn([&] {
    sleep_for(1s);
    barrier.reset();
    EXPECT_FALSE(barrier.broken()) << "reset breaks the waiters, not the barrier";
    EXPECT_EQ(barrier.n_waiting(), 0u);
    // Three new parties are needed: the two broken waiters no longer count.
    for (int i = 0; i < 2; ++i) weave::spawn([&] { fresh.push_back(barrier.wait()); });
    sleep_for(1s);
    EXPECT_EQ(barrier.n_waiting(), 2u);
    fresh.push_back(barrier.wait());
  });
  run_all(loop);
  EXPECT_EQ(broken, 2);
  std::sort(fresh.begin(), fresh.end());
  EXPECT_EQ(fresh, (std::vector<std::size_t>{0, 1, 2}));
}

TEST(Barrier, ResetAndAbortWorkFromCallbacks) {
  weave::ManualClock clock;
  weave::Barrier barrier(2);
  std::vector<nanoseconds> broken_at;
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < 2; ++i)
    loop.spawn([&, i] {
      sleep_for(std::chrono::seconds(i));  // the first waits from 0 s, the second from 1 s
      try {
        barrier.wait();
        ADD_FAILURE() << "the barrier was reset or aborted";
      } catch (const weave::BrokenBarrierError&) {
        broken_at.push_back(now(loop));
      }
    });
  loop.call_later(500ms, [&] { barrier.reset(); });
  loop.call_later(1500ms, [&] { barrier.abort(); });
  run_all(loop);
  EXPECT_EQ(broken_at, (std::vector<nanoseconds>{500ms, 1500ms}));
  EXPECT_TRUE(barrier.broken());
}

// ---- Cancellation ------------------------------------------------------------------------------

TEST(Barrier, AWaiterCancelledWhileWaitingLeavesTheCycleWithoutBreakingIt) {
  weave::ManualClock clock;
  weave::Barrier barrier(3);
  std::vector<Pass> passes;
  weave::Loop loop(manual_time(clock));
  auto a = loop.spawn([&] { passes.push_back({"a", barrier.wait(), now(loop)}); });
  loop.spawn([&] { passes.push_back({"b", barrier.wait(), now(loop)}); });
  loop.call_later(1s, [&] {
    a.cancel();
    EXPECT_EQ(barrier.n_waiting(), 2u) << "a leaves when it runs";
  });
  loop.spawn([&] {
    sleep_for(2s);
    EXPECT_EQ(barrier.n_waiting(), 1u) << "a left";
    passes.push_back({"c", barrier.wait(), now(loop)});
  });
  loop.spawn([&] {
    sleep_for(3s);
    EXPECT_FALSE(barrier.broken());
    passes.push_back({"d", barrier.wait(), now(loop)});
  });
  run_all(loop);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(passes, (std::vector<Pass>{{"d", 2, 3s}, {"b", 0, 3s}, {"c", 1, 3s}}))
      << "the indices stay dense: a gave up its place";
}

TEST(Barrier, AWaiterCancelledAfterTheCycleCompletedThrowsAndTheOthersPass) {
  weave::ManualClock clock;
  weave::Barrier barrier(3);
  std::vector<Pass> passes;
  weave::Loop loop(manual_time(clock));
  weave::Task<void> a = loop.spawn([&] { passes.push_back({"a", barrier.wait(), now(loop)}); });
  loop.spawn([&] { passes.push_back({"b", barrier.wait(), now(loop)}); });
  loop.spawn([&] {
    sleep_for(1s);
    // c's arrival releases a and b, and a is cancelled before it runs.
    passes.push_back({"c", barrier.wait(), now(loop)});
    a.cancel();
  });
  run_all(loop);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(passes, (std::vector<Pass>{{"c", 2, 1s}, {"b", 1, 1s}}));
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, APendingCancellationIsThrownBeforeJoiningTheCycle) {
  weave::ManualClock clock;
  weave::Barrier barrier(2);
  nanoseconds thrown_at{-1};
  std::size_t waiting_after = 99;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    try {
      barrier.wait();
    } catch (const weave::Cancelled&) {
      thrown_at = now(loop);
      waiting_after = barrier.n_waiting();
      throw;
    }
  });
  run_all(loop);
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(thrown_at, 0s);
  EXPECT_EQ(waiting_after, 0u);
}

TEST(Barrier, TheLastPartyPassesEvenWithACancellationPendingLikeAsyncio) {
  weave::ManualClock clock;
  weave::Barrier barrier(2);
  std::size_t other_index = 99;
  std::size_t last_index = 99;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] { other_index = barrier.wait(); });
  auto last = loop.spawn([&] {
    sleep_for(1s);
    weave::current_task().cancel();
    last_index = barrier.wait();  // does not wait, so it is not a checkpoint
    weave::this_fiber::yield();   // the cancellation is delivered here
  });
  run_all(loop);
  EXPECT_EQ(other_index, 0u);
  EXPECT_EQ(last_index, 1u);
  EXPECT_TRUE(last.cancelled());
}

// ---- Timeouts ----------------------------------------------------------------------------------

TEST(Barrier, ATimedOutWaitLeavesTheBarrierConsistent) {
  weave::ManualClock clock;
  weave::Barrier barrier(4);
  nanoseconds timed_out_at{-1};
  bool moved_on = false;
  std::vector<Pass> passes;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    try {
      weave::fail_after(1s, [&] { barrier.wait(); });
      ADD_FAILURE() << "fail_after should have thrown";
    } catch (const weave::TimeoutError&) {
      timed_out_at = now(loop);
    }
  });
  loop.spawn([&] { moved_on = weave::move_on_after(2s, [&] { barrier.wait(); }); });
  loop.spawn([&] { passes.push_back({"patient", barrier.wait(), now(loop)}); });
  loop.spawn([&] {
    sleep_for(3s);
    EXPECT_EQ(barrier.n_waiting(), 1u) << "only the patient waiter is left";
    EXPECT_FALSE(barrier.broken()) << "a timeout does not break the barrier (asyncio)";
    passes.push_back({"second", barrier.wait(), now(loop)});
  });
  for (auto [who, arrive] : {std::pair{"third", 4s}, {"fourth", 5s}})
    loop.spawn([&, who = std::string(who), arrive = arrive] {
      sleep_for(arrive);
      passes.push_back({who, barrier.wait(), now(loop)});
    });
  run_all(loop);
  EXPECT_EQ(timed_out_at, 1s);
  EXPECT_TRUE(moved_on);
  EXPECT_EQ(passes,
            (std::vector<Pass>{
                {"fourth", 3, 5s}, {"patient", 0, 5s}, {"second", 1, 5s}, {"third", 2, 5s}}));
}

// ---- Use outside a fiber -----------------------------------------------------------------------

TEST(Barrier, WaitOutsideAFiberThrowsLogicError) {
  weave::ManualClock clock;
  weave::Barrier barrier(1);
  EXPECT_THROW(barrier.wait(), std::logic_error) << "no loop at all";
  weave::Loop loop(manual_time(clock));
  EXPECT_THROW(barrier.wait(), std::logic_error) << "even as the last party, which would not wait";
  loop.call_soon([&] { EXPECT_THROW(barrier.wait(), std::logic_error) << "from a callback"; });
  run_all(loop);
  barrier.abort();
  EXPECT_THROW(barrier.wait(), std::logic_error) << "the misuse is reported before the breakage";
}

}  // namespace
