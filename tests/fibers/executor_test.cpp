#include "weave/executor.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include "destruction_log.hpp"
#include "weave/loop.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;

TEST(ToThread, ReturnsTheResultOfTheBlockingCall) {
  int r = weave::run([] { return weave::to_thread([](int x) { return x * 2; }, 21); });
  EXPECT_EQ(r, 42);
}

TEST(ToThread, RunsOnAnotherThread) {
  std::thread::id loop_thread = std::this_thread::get_id();
  std::thread::id job_thread =
      weave::run([] { return weave::to_thread([] { return std::this_thread::get_id(); }); });
  EXPECT_NE(job_thread, loop_thread);
}

TEST(ToThread, OtherFibersRunWhileTheCallerWaits) {
  // The job blocks until a second fiber opens the gate: it can only finish if the loop keeps
  // running fibers while the first one waits for the thread.
  std::promise<void> gate;
  auto opened = gate.get_future().share();
  int r = weave::run([&] {
    auto opener = weave::spawn([&] { gate.set_value(); });
    return weave::to_thread([opened] {
      opened.wait();
      return 7;
    });
  });
  EXPECT_EQ(r, 7);
}

TEST(ToThread, RethrowsTheJobsException) {
  EXPECT_THROW(
      weave::run([] { weave::to_thread([] { throw std::runtime_error("disk on fire"); }); }),
      std::runtime_error);
  try {
    weave::run([] { weave::to_thread([] { throw std::runtime_error("disk on fire"); }); });
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "disk on fire");
  }
}

TEST(ToThread, TheJobsExceptionIsDestroyedOnTheLoopsThread) {
  // The worker must let go of the exception before the waiter can see it: whichever side drops
  // it last, it is destroyed on the loop's thread (and TSan sees no race on its count).
  weave_test::DestructionLog log;
  weave::ThreadPool pool(1);
  for (int i = 0; i < 20; ++i) {
    weave::run([&] {
      try {
        weave::run_in_executor(pool, [&] {
          weave_test::LoggedError error(&log);
          throw error;  // a copy, which logs
        });
      } catch (const weave_test::LoggedError&) {
      }
      weave::run_in_executor(pool, [] {});  // one worker, in order: the first job is over
    });
    ASSERT_NE(log.last(), std::thread::id()) << "round " << i;
    EXPECT_EQ(log.last(), std::this_thread::get_id()) << "round " << i;
  }
}

TEST(ToThread, CancellingTheWaiterRequestsStopAndDropsTheLateResult) {
  std::atomic<bool> saw_stop{false};
  std::atomic<bool> job_done{false};
  weave::run([&] {
    auto waiter = weave::spawn([&] {
      return weave::to_thread([&](std::stop_token st) {
        while (!st.stop_requested()) std::this_thread::sleep_for(100us);
        saw_stop = true;
        job_done = true;
        return std::string("late result nobody reads");
      });
    });
    weave::this_fiber::yield();  // the waiter submits its job and suspends
    EXPECT_FALSE(waiter.done());
    waiter.cancel();
    waiter.join();
    EXPECT_TRUE(waiter.cancelled());
  });
  // The thread cannot be interrupted: it stops because it was asked to, on its own time.
  for (int i = 0; i < 5000 && !job_done; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(saw_stop);
}

TEST(ToThread, IsACancellationCheckpointBeforeSubmitting) {
  std::atomic<int> runs{0};
  weave::run([&] {
    auto t = weave::spawn([&] {
      weave::current_task().cancel();
      weave::to_thread([&] { ++runs; });
    });
    t.join();
    EXPECT_TRUE(t.cancelled());
  });
  EXPECT_EQ(runs.load(), 0);
}

TEST(ToThread, OutsideAFiberIsALogicError) {
  weave::Loop loop;
  EXPECT_THROW(weave::to_thread([] { return 1; }), std::logic_error);
}

TEST(RunInExecutor, UsesTheGivenPoolsThreadsConcurrently) {
  weave::ThreadPool pool(2);
  EXPECT_EQ(pool.size(), 2u);
  // Two jobs that each wait for the other: they finish only if they run at the same time.
  std::atomic<int> arrived{0};
  auto meet = [&] {
    ++arrived;
    for (int i = 0; i < 5000 && arrived.load() < 2; ++i) std::this_thread::sleep_for(1ms);
    return arrived.load();
  };
  auto [a, b] = weave::run([&] {
    auto t1 = weave::spawn([&] { return weave::run_in_executor(pool, meet); });
    auto t2 = weave::spawn([&] { return weave::run_in_executor(pool, meet); });
    return std::pair(t1.get(), t2.get());
  });
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 2);
}

TEST(RunInExecutor, JobsQueuedWhenThePoolShutsDownBreakTheirPromises) {
  auto pool = std::make_unique<weave::ThreadPool>(1);
  std::promise<void> gate;
  auto opened = gate.get_future().share();
  std::atomic<bool> started{false};
  weave::run([&] {
    auto first = weave::spawn([&] {
      weave::run_in_executor(*pool, [&started, opened] {
        started = true;
        opened.wait();
      });
    });
    auto second = weave::spawn([&] { weave::run_in_executor(*pool, [] {}); });
    weave::this_fiber::yield();                  // both jobs are submitted
    while (!started) std::this_thread::yield();  // the first occupies the only thread
    pool->shutdown();                            // the second job never started: it is dropped
    EXPECT_THROW(pool->submit([] {}), std::runtime_error);
    gate.set_value();  // let the first end, so the destructor can join
    pool.reset();
    first.join();
    EXPECT_NO_THROW(first.get());
    try {
      second.get();
      ADD_FAILURE() << "the dropped job's waiter should hear of it";
    } catch (const std::future_error& e) {
      EXPECT_EQ(e.code(), std::make_error_code(std::future_errc::broken_promise));
    }
  });
}

TEST(ThreadPool, DefaultSizeIsTheHardwareConcurrency) {
  EXPECT_EQ(weave::ThreadPool::default_size(),
            std::max<std::size_t>(1, std::thread::hardware_concurrency()));
  EXPECT_GE(weave::default_executor().size(), 1u);
}

TEST(WrapFuture, AwaitsAStdFutureWithoutBlockingTheLoop) {
  std::promise<int> p;
  int ticks = 0;
  int r = weave::run([&] {
    auto ticker = weave::spawn([&] {
      ++ticks;
      p.set_value(5);  // completes the std::future only once the loop has run this fiber
    });
    return weave::wrap_future(p.get_future()).get();
  });
  EXPECT_EQ(r, 5);
  EXPECT_EQ(ticks, 1);
}

TEST(WrapFuture, CarriesTheException) {
  std::promise<int> p;
  p.set_exception(std::make_exception_ptr(std::out_of_range("nope")));
  EXPECT_THROW(weave::run([&] { return weave::wrap_future(p.get_future()).get(); }),
               std::out_of_range);
}

TEST(WrapFuture, AcceptsASharedFuture) {
  std::promise<std::string> p;
  std::shared_future<std::string> sf = p.get_future().share();
  p.set_value("shared");
  auto r = weave::run([&] { return weave::wrap_future(sf).get(); });
  EXPECT_EQ(r, "shared");
  EXPECT_EQ(sf.get(), "shared");  // the shared future is still usable
}

}  // namespace
