// Loop::call_soon_threadsafe: posts from other threads, waking an idle loop, closed loops, and
// an idle loop that costs no CPU.

#include "weave/loop.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weave/handle.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Handle;
using weave::Loop;

constexpr int kThreads = 4;
constexpr int kPostsPerThread = 10000;

// CPU time (user + system) used so far by the calling thread.
std::chrono::microseconds thread_cpu_time() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  auto tv = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

// Posts from kThreads threads; a last thread posts stop() once they have all finished, so the
// stop is the last item posted and the loop returns only after everything before it ran.
template <class MakeCallback>
void post_from_threads_then_stop(Loop& loop, MakeCallback make_callback) {
  std::thread coordinator([&] {
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t) {
      producers.emplace_back([&, t] {
        for (int i = 0; i < kPostsPerThread; ++i) loop.call_soon_threadsafe(make_callback(t, i));
      });
    }
    for (auto& p : producers) p.join();
    loop.call_soon_threadsafe([&loop] { loop.stop(); });
  });
  loop.run_forever();
  coordinator.join();
}

TEST(CallSoonThreadsafe, EveryPostFromManyThreadsRunsExactlyOnceOnTheLoopThread) {
  Loop loop;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::vector<std::vector<std::uint8_t>> runs(kThreads,
                                              std::vector<std::uint8_t>(kPostsPerThread, 0));
  int wrong_thread = 0;
  int in_fiber = 0;
  post_from_threads_then_stop(loop, [&](int t, int i) {
    return [&, t, i] {
      ++runs[t][i];
      if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
      if (weave::this_fiber::in_fiber()) ++in_fiber;
    };
  });

  EXPECT_EQ(wrong_thread, 0);
  EXPECT_EQ(in_fiber, 0);
  int missing = 0, repeated = 0;
  for (auto& per_thread : runs) {
    for (std::uint8_t n : per_thread) {
      missing += n == 0;
      repeated += n > 1;
    }
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(repeated, 0);
}

TEST(CallSoonThreadsafe, PostsFromOneThreadRunInTheOrderTheyWerePosted) {
  Loop loop;
  std::vector<std::vector<int>> seen(kThreads);
  for (auto& s : seen) s.reserve(kPostsPerThread);
  post_from_threads_then_stop(
      loop, [&](int t, int i) { return [&seen, t, i] { seen[t].push_back(i); }; });

  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<std::size_t>(kPostsPerThread)) << "thread " << t;
    int out_of_order = 0;
    for (int i = 0; i < kPostsPerThread; ++i) out_of_order += seen[t][i] != i;
    EXPECT_EQ(out_of_order, 0) << "thread " << t;
  }
}

TEST(CallSoonThreadsafe, PostsFromTheLoopThreadKeepFifoOrderWithCallSoon) {
  Loop loop;
  std::vector<int> order;
  loop.call_soon([&] {
    loop.call_soon_threadsafe([&] { order.push_back(1); });
    loop.call_soon_threadsafe([&] { order.push_back(2); });
    loop.call_soon_threadsafe([&] {
      order.push_back(3);
      loop.stop();
    });
  });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(CallSoonThreadsafe, RunRunsACallbackPostedBeforeItStarted) {
  // Like call_soon (asyncio puts it straight on the ready queue): run() must not return
  // while a posted callback is waiting in the inbox.
  Loop loop;
  bool ran = false;
  std::thread([&] { loop.call_soon_threadsafe([&] { ran = true; }); }).join();
  loop.run();
  EXPECT_TRUE(ran);
}

TEST(CallSoonThreadsafe, RunRunsACallbackPostedFromTheLoopThreadBeforeItStarted) {
  Loop loop;
  bool ran = false;
  loop.call_soon_threadsafe([&] { ran = true; });
  loop.run();
  EXPECT_TRUE(ran);
}

TEST(CallSoonThreadsafe, APostWakesALoopBlockedIdleInRunForever) {
  Loop loop;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  std::thread poster([&] {
    std::this_thread::sleep_for(5ms);  // most likely the loop is asleep in epoll_wait by now
    loop.call_soon_threadsafe([&] {
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
  });
  loop.run_forever();
  poster.join();
  EXPECT_EQ(ran_on, loop_thread);
}

TEST(CallSoonThreadsafe, APostWakesALoopWaitingForADistantTimer) {
  Loop loop;  // real time: the loop sleeps towards a timer an hour away
  bool timer_fired = false;
  Handle far = loop.call_later(1h, [&] { timer_fired = true; });
  std::thread poster([&] {
    std::this_thread::sleep_for(5ms);
    loop.call_soon_threadsafe([&] { loop.stop(); });
  });
  const auto start = std::chrono::steady_clock::now();
  loop.run_forever();
  const auto waited = std::chrono::steady_clock::now() - start;
  poster.join();
  EXPECT_FALSE(timer_fired);
  EXPECT_LT(waited, 10s);  // only fails if the post did not wake the loop (generous, one-sided)
  EXPECT_TRUE(far.cancel());
}

TEST(CallSoonThreadsafe, AHandleFromAnotherThreadCanCancelThePostedCallback) {
  Loop loop;
  bool ran = false;
  bool cancel_result = false;
  std::thread([&] {
    Handle h = loop.call_soon_threadsafe([&] { ran = true; });
    cancel_result = h.cancel();
  }).join();
  loop.call_soon_threadsafe([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_TRUE(cancel_result);
  EXPECT_FALSE(ran);
}

// Runs `check` in a child process and expects it to return an empty string (otherwise: what
// went wrong). A crash then fails only the one test instead of taking the whole file down.
template <class Check>
void expect_in_child(Check check) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::string why = check();
        if (!why.empty()) std::fprintf(stderr, "%s\n", why.c_str());
        std::_Exit(why.empty() ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

TEST(CallSoonThreadsafe, PostingToAClosedLoopThrowsRuntimeError) {
  expect_in_child([]() -> std::string {
    Loop loop;
    loop.close();
    auto token = std::make_shared<int>(0);
    try {
      loop.call_soon_threadsafe([token] { ++*token; });
      return "call_soon_threadsafe on a closed loop did not throw";
    } catch (const std::runtime_error&) {
    } catch (...) {
      return "call_soon_threadsafe on a closed loop threw something else than runtime_error";
    }
    if (*token != 0) return "the refused callback ran";
    if (token.use_count() != 1) return "the refused callback was not released";
    return "";
  });
}

TEST(CallSoonThreadsafe, PostingToAClosedLoopFromAnotherThreadThrowsRuntimeError) {
  expect_in_child([]() -> std::string {
    Loop loop;
    loop.close();
    std::string why;
    bool ran = false;
    std::thread([&] {
      try {
        loop.call_soon_threadsafe([&] { ran = true; });
        why = "call_soon_threadsafe on a closed loop did not throw";
      } catch (const std::runtime_error&) {
      } catch (...) {
        why = "call_soon_threadsafe on a closed loop threw something else than runtime_error";
      }
    }).join();
    if (why.empty() && ran) why = "the refused callback ran";
    return why;
  });
}

TEST(CallSoonThreadsafe, CallbacksStillQueuedWhenTheLoopClosesAreReleasedWithoutRunning) {
  Loop loop;
  auto token = std::make_shared<int>(0);
  std::thread([&] { loop.call_soon_threadsafe([token] { ++*token; }); }).join();
  loop.close();
  EXPECT_EQ(*token, 0);
  EXPECT_EQ(token.use_count(), 1);
}

// ---- An idle loop uses no CPU ---------------------------------------------------------------

TEST(IdleLoop, BlockedInRunForeverUsesAlmostNoCpu) {
  Loop loop;
  std::thread poster([&] {
    std::this_thread::sleep_for(30ms);
    loop.call_soon_threadsafe([&] { loop.stop(); });
  });
  const auto cpu0 = thread_cpu_time();
  const auto wall0 = std::chrono::steady_clock::now();
  loop.run_forever();
  const auto wall = std::chrono::steady_clock::now() - wall0;
  const auto cpu = thread_cpu_time() - cpu0;
  poster.join();

  ASSERT_GE(wall, 25ms) << "the loop returned before the stop was posted";
  EXPECT_LT(cpu, 10ms) << "an idle loop must sleep, not spin";
}

TEST(IdleLoop, WaitingForATimerUsesAlmostNoCpuAndDoesNotFireEarly) {
  Loop loop;  // real time
  const auto wall0 = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration fired_after{};
  loop.call_later(30ms, [&] { fired_after = std::chrono::steady_clock::now() - wall0; });
  const auto cpu0 = thread_cpu_time();
  loop.run();
  const auto cpu = thread_cpu_time() - cpu0;

  EXPECT_GE(fired_after, 30ms) << "a timer must not fire before its deadline";
  EXPECT_LT(cpu, 10ms) << "waiting for a timer must sleep, not spin";
}

TEST(IdleLoop, AFiberSleepingInRealTimeUsesAlmostNoCpu) {
  Loop loop;  // real time
  auto task = loop.spawn([] { weave::this_fiber::sleep_for(30ms); });
  const auto cpu0 = thread_cpu_time();
  const auto wall0 = std::chrono::steady_clock::now();
  loop.run_until_complete(task);
  const auto wall = std::chrono::steady_clock::now() - wall0;
  const auto cpu = thread_cpu_time() - cpu0;

  EXPECT_GE(wall, 30ms) << "the sleep ended early";
  EXPECT_LT(cpu, 10ms);
}

}  // namespace
