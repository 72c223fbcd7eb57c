// Promise / Future: a result that arrives later, possibly from another thread.

#include "weave/future.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "destruction_log.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

// The error code of the std::future_error that `fn` throws.
template <class F>
std::error_code future_error_of(F&& fn) {
  try {
    fn();
  } catch (const std::future_error& e) {
    return e.code();
  }
  return {};
}

// ---- Values and exceptions ---------------------------------------------------------------------

TEST(Future, SetValueThenGetReturnsTheValue) {
  weave::Loop loop;
  weave::Promise<std::string> promise;
  weave::Future<std::string> future = promise.get_future();
  EXPECT_TRUE(future.valid());
  EXPECT_FALSE(future.done());
  promise.set_value("hello");
  EXPECT_TRUE(future.done());
  EXPECT_FALSE(future.cancelled());
  auto t = loop.spawn([&] { return future.get(); });
  EXPECT_EQ(t.get(), "hello");
}

TEST(Future, FiberWaitingOnAFutureResumesWithTheValueSetLater) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Promise<int> promise;
  nanoseconds got_at{-1};
  auto waiter = loop.spawn([&, f = promise.get_future()] {
    int v = f.get();
    got_at = loop.time().time_since_epoch();
    return v;
  });
  loop.call_later(3s, [&] { promise.set_value(17); });
  EXPECT_EQ(waiter.get(), 17);
  EXPECT_EQ(got_at, nanoseconds(3s));
}

TEST(Future, SetExceptionThenGetRethrowsIt) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  auto waiter = loop.spawn([&] {
    try {
      future.get();
    } catch (const std::out_of_range& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  });
  loop.call_soon([&] { promise.set_exception(std::make_exception_ptr(std::out_of_range("oor"))); });
  EXPECT_EQ(waiter.get(), "oor");
  EXPECT_TRUE(future.done());
  EXPECT_FALSE(future.cancelled());
  EXPECT_THROW(future.get(), std::out_of_range) << "get() can be called again";
}

TEST(Future, MoveOnlyValueCanBeMovedOutOfGet) {
  weave::Loop loop;
  weave::Promise<std::unique_ptr<int>> promise;
  auto future = promise.get_future();
  promise.set_value(std::make_unique<int>(3));
  std::unique_ptr<int> p = std::move(future.get());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 3);
}

TEST(Future, VoidFutureWakesItsWaiter) {
  weave::Loop loop;
  weave::Promise<void> promise;
  weave::Future<void> future = promise.get_future();
  std::vector<std::string> log;
  auto waiter = loop.spawn([&] {
    log.push_back("waiting");
    future.get();
    log.push_back("woken");
  });
  auto setter = loop.spawn([&] {
    log.push_back("setting");
    promise.set_value();
  });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"waiting", "setting", "woken"}));
  EXPECT_TRUE(future.done());
}

TEST(Future, CopiesShareTheStateAndEveryWaiterWakes) {
  weave::Loop loop;
  weave::Promise<int> promise;
  weave::Future<int> original = promise.get_future();
  weave::Future<int> copy = original;
  weave::Future<int> second_from_promise = promise.get_future();
  int sum = 0;
  std::vector<weave::Task<void>> waiters;
  for (auto* f : {&original, &copy, &second_from_promise})
    waiters.push_back(loop.spawn([&sum, f] { sum += f->get(); }));
  loop.call_soon([&] { promise.set_value(5); });
  loop.run();
  EXPECT_EQ(sum, 15);
  EXPECT_TRUE(copy.done());
  for (auto& w : waiters) EXPECT_TRUE(w.done());
}

TEST(Future, WaitersWakeInTheOrderTheyBeganWaiting) {
  weave::Loop loop;
  weave::Promise<void> promise;
  auto future = promise.get_future();
  std::string order;
  for (char c : std::string("ABCD")) {
    loop.spawn([&order, &future, c] {
      future.get();
      order += c;
    });
  }
  loop.call_soon([&] { promise.set_value(); });
  loop.run();
  EXPECT_EQ(order, "ABCD");
}

TEST(Future, DefaultConstructedFutureIsNotValid) {
  weave::Future<int> f;
  EXPECT_FALSE(f.valid());
}

// ---- Completing twice, cancelling ---------------------------------------------------------------

TEST(Future, SecondSetValueThrowsPromiseAlreadySatisfied) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  promise.set_value(1);
  EXPECT_EQ(future_error_of([&] { promise.set_value(2); }),
            std::future_errc::promise_already_satisfied);
  EXPECT_EQ(future_error_of([&] { promise.set_exception(std::make_exception_ptr(1)); }),
            std::future_errc::promise_already_satisfied);
  EXPECT_FALSE(promise.try_set_value(3));
  EXPECT_FALSE(promise.try_set_exception(std::make_exception_ptr(1)));
  EXPECT_EQ(future.get(), 1) << "the first value stays";
}

TEST(Future, CancelWakesWaitersWithCancelled) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  bool waiter_got_cancelled = false;
  auto waiter = loop.spawn([&] {
    try {
      future.get();
    } catch (const weave::Cancelled&) {
      waiter_got_cancelled = true;
    }
    weave::this_fiber::yield();  // the waiting task itself was not cancelled
    return 1;
  });
  loop.call_soon([&] { EXPECT_TRUE(future.cancel()); });
  EXPECT_EQ(waiter.get(), 1);
  EXPECT_TRUE(waiter_got_cancelled);
  EXPECT_FALSE(waiter.cancelled());
  EXPECT_TRUE(future.done());
  EXPECT_TRUE(future.cancelled());
}

TEST(Future, WaiterThatDoesNotCatchACancelledFutureEndsCancelled) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  auto waiter = loop.spawn([&] { return future.get(); });
  loop.call_soon([&] { future.cancel(); });
  loop.run();
  EXPECT_TRUE(waiter.cancelled());
}

TEST(Future, SetValueAfterCancelThrowsFutureErrorAndTrySetValueReturnsFalse) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  EXPECT_TRUE(future.cancel());
  EXPECT_FALSE(future.cancel()) << "already done";
  EXPECT_EQ(future_error_of([&] { promise.set_value(1); }),
            std::future_errc::promise_already_satisfied);
  EXPECT_FALSE(promise.try_set_value(1));
  EXPECT_FALSE(promise.try_set_exception(std::make_exception_ptr(1)));
  EXPECT_TRUE(future.cancelled());
  EXPECT_THROW(future.get(), weave::Cancelled);
}

TEST(Future, CancelAfterSetValueReturnsFalseAndKeepsTheValue) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  promise.set_value(8);
  EXPECT_FALSE(future.cancel());
  EXPECT_FALSE(future.cancelled());
  EXPECT_EQ(future.get(), 8);
}

TEST(Future, DestroyingAnUnfulfilledPromiseBreaksIt) {
  weave::Loop loop;
  auto promise = std::make_unique<weave::Promise<int>>();
  auto future = promise->get_future();
  auto waiter = loop.spawn([&] { return future_error_of([&] { future.get(); }); });
  loop.call_soon([&] { promise.reset(); });
  EXPECT_EQ(waiter.get(), std::future_errc::broken_promise);
  EXPECT_TRUE(future.done());
}

TEST(Future, MoveAssigningOverAnUnfulfilledPromiseBreaksTheOldOne) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto old_future = promise.get_future();
  promise = weave::Promise<int>();
  EXPECT_TRUE(old_future.done());
  EXPECT_EQ(future_error_of([&] { old_future.get(); }), std::future_errc::broken_promise);
  auto new_future = promise.get_future();
  EXPECT_FALSE(new_future.done());
  promise.set_value(2);
  EXPECT_EQ(new_future.get(), 2);
}

TEST(Future, DestroyingAFulfilledPromiseKeepsTheValue) {
  weave::Loop loop;
  weave::Future<int> future;
  {
    weave::Promise<int> promise;
    future = promise.get_future();
    promise.set_value(4);
  }
  EXPECT_EQ(future.get(), 4);
}

// ---- Callbacks --------------------------------------------------------------------------------

TEST(Future, DoneCallbackRunsOnTheLoopAfterCompletion) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  std::vector<std::string> log;
  bool in_fiber = true;
  future.add_done_callback([&] {
    log.push_back("callback sees " + std::to_string(future.get()));
    in_fiber = weave::this_fiber::in_fiber();
  });
  loop.run();
  EXPECT_TRUE(log.empty());
  promise.set_value(12);
  EXPECT_TRUE(log.empty()) << "callbacks run on the loop, not inside set_value";
  loop.run();
  EXPECT_EQ(log, std::vector<std::string>{"callback sees 12"});
  EXPECT_FALSE(in_fiber);
}

TEST(Future, DoneCallbackAddedAfterCompletionRunsOnTheNextTurn) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  promise.set_value(1);
  int calls = 0;
  future.add_done_callback([&] { ++calls; });
  EXPECT_EQ(calls, 0);
  loop.run();
  EXPECT_EQ(calls, 1);
}

TEST(Future, DoneCallbacksRunInTheOrderAdded) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) future.add_done_callback([&order, i] { order.push_back(i); });
  loop.call_soon([&] { promise.set_value(0); });
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Future, DoneCallbackRunsOnCancelAndOnBrokenPromise) {
  weave::Loop loop;
  int calls = 0;
  weave::Promise<int> cancelled;
  auto f1 = cancelled.get_future();
  f1.add_done_callback([&] { ++calls; });
  f1.cancel();
  auto broken = std::make_unique<weave::Promise<int>>();
  auto f2 = broken->get_future();
  f2.add_done_callback([&] { ++calls; });
  broken.reset();
  loop.run();
  EXPECT_EQ(calls, 2);
}

// ---- Cancellation of the waiter ---------------------------------------------------------------

TEST(Future, WaitingIsACancellationCheckpointAndTheFutureIsUnaffected) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Promise<int> promise;
  auto future = promise.get_future();
  auto waiter = loop.spawn([&] { return future.get(); });
  auto other = loop.spawn([&] { return future.get(); });
  loop.call_later(1s, [&] { waiter.cancel(); });
  loop.call_later(2s, [&] { promise.set_value(6); });
  EXPECT_EQ(other.get(), 6) << "the other waiter still got the value";
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_FALSE(future.cancelled());
  EXPECT_EQ(future.get(), 6);
}

TEST(Future, PendingCancellationIsDeliveredBeforeWaiting) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    future.wait();
  });
  loop.run();
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(future.done());
}

// ---- Threads ---------------------------------------------------------------------------------

TEST(Future, CompletionFromAnotherThreadWakesTheWaitingFiber) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  std::thread::id waiter_thread;
  auto waiter = loop.spawn([&] {
    int v = future.get();
    waiter_thread = std::this_thread::get_id();
    return v;
  });
  std::thread producer([&] {
    std::this_thread::sleep_for(2ms);  // very likely after the fiber parked; correct either way
    promise.set_value(99);
  });
  EXPECT_EQ(waiter.get(), 99);
  producer.join();
  EXPECT_EQ(waiter_thread, std::this_thread::get_id()) << "fibers run on the loop's thread";
}

TEST(Future, TenThousandPromisesCompletedFromAnotherThreadWakeTheirFibers) {
  constexpr int kCount = 10'000;
  weave::Loop loop;
  std::vector<weave::Promise<int>> promises(kCount);
  long long sum = 0;
  int woken = 0;
  std::vector<weave::Task<void>> waiters;
  waiters.reserve(kCount);
  for (int i = 0; i < kCount; ++i) {
    waiters.push_back(loop.spawn([&, f = promises[i].get_future()] {
      sum += f.get();
      ++woken;
    }));
  }
  // Make sure the fibers are parked on their futures before the producer starts, so that the
  // cross-thread wake-up path is the one exercised (not the "already ready" shortcut).
  loop.spawn([] {}).get();
  std::atomic<bool> go{false};
  std::thread producer([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < kCount; ++i) promises[i].set_value(i);
  });
  go = true;
  loop.run();
  producer.join();
  EXPECT_EQ(woken, kCount);
  EXPECT_EQ(sum, 1LL * kCount * (kCount - 1) / 2);
}

TEST(Future, PingPongBetweenAFiberAndAThreadManyTimes) {
  constexpr int kRounds = 2'000;
  weave::Loop loop;
  // The thread answers each request; every answer is a fresh promise of the loop.
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::pair<int, weave::Promise<int>>> requests;
  bool done = false;
  std::thread server([&] {
    for (;;) {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done || !requests.empty(); });
      if (requests.empty()) return;
      auto batch = std::move(requests);
      requests.clear();
      lock.unlock();
      for (auto& [x, p] : batch) p.set_value(x + 1);
    }
  });
  auto client = loop.spawn([&] {
    int x = 0;
    for (int i = 0; i < kRounds; ++i) {
      weave::Promise<int> p;
      auto f = p.get_future();
      {
        std::lock_guard lock(m);
        requests.emplace_back(x, std::move(p));
      }
      cv.notify_one();
      x = f.get();
    }
    return x;
  });
  int result = client.get();
  {
    std::lock_guard lock(m);
    done = true;
  }
  cv.notify_one();
  server.join();
  EXPECT_EQ(result, kRounds);
}

TEST(Future, PromiseOnAThreadWithoutALoopThrowsLogicError) {
  bool threw = false;
  std::thread t([&] {
    try {
      weave::Promise<int> p;
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  t.join();
  EXPECT_TRUE(threw);
}

// ---- Waiting outside a fiber ------------------------------------------------------------------

TEST(Future, GetOutsideAnyFiberRunsTheLoopUntilTheFutureIsDone) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Promise<int> promise;
  auto future = promise.get_future();
  auto unrelated = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  auto producer = loop.spawn([&] {
    weave::this_fiber::sleep_for(2s);
    promise.set_value(10);
  });
  EXPECT_EQ(future.get(), 10);
  EXPECT_FALSE(loop.is_running());
  EXPECT_FALSE(unrelated.done()) << "the loop ran only until the future was done";
  EXPECT_LT(loop.time().time_since_epoch(), nanoseconds(1h));
}

TEST(Future, GetOutsideAnyFiberWakesOnACompletionFromAnotherThread) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  std::thread producer([&] {
    std::this_thread::sleep_for(1ms);
    promise.set_value(5);
  });
  EXPECT_EQ(future.get(), 5);
  producer.join();
}

TEST(Future, GetOutsideAnyFiberOnAThreadWhoseLoopDoesNotOwnTheFutureThrowsLogicError) {
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  bool threw = false;
  std::thread t([&] {
    try {
      future.get();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  t.join();
  EXPECT_TRUE(threw);
}

// ---- Where a producer thread's outcome is destroyed ---------------------------------------------

using weave_test::DestructionLog;
using weave_test::LoggedError;
using Logged = weave_test::LoggedValue;

// The producer completes, then holds on to its Promise until the loop has seen the outcome and
// dropped its Future: the producer's reference is the last one to go. It must not take the
// outcome with it: a value or exception made for the loop is destroyed on the loop's thread
// (its type may be loop-affine, and an exception's count is not visible to TSan).
template <class Complete>
std::thread::id where_the_outcome_of_a_late_producer_dies(Complete complete) {
  DestructionLog log;
  {
    weave::Loop loop;
    weave::Promise<Logged> promise;
    std::optional<weave::Future<Logged>> future = promise.get_future();
    std::promise<void> gate;
    std::thread producer(
        [&log, &complete, p = std::move(promise), g = gate.get_future()]() mutable {
          complete(p, &log);
          g.wait();
        });
    future->wait();     // outside any fiber: returns once the outcome is there
    loop.run_nowait();  // and the wake-up, if it was still in the inbox, has been run
    future.reset();
    gate.set_value();
    producer.join();
    loop.run_nowait();
  }
  return log.last();
}

TEST(Future, AValueSetOnAnotherThreadIsDestroyedOnTheLoopsThread) {
  auto where = where_the_outcome_of_a_late_producer_dies(
      [](weave::Promise<Logged>& p, DestructionLog* log) { p.set_value(Logged(log)); });
  EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(Future, AnExceptionSetOnAnotherThreadIsDestroyedOnTheLoopsThread) {
  auto where =
      where_the_outcome_of_a_late_producer_dies([](weave::Promise<Logged>& p, DestructionLog* log) {
        p.set_exception(std::make_exception_ptr(LoggedError(log)));
      });
  EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(Future, APromiseCompletedOnAnotherThreadIsSpentThere) {
  // Its reference went with the wake-up: a second completion is refused as already satisfied,
  // and asking it for a future is an error rather than a crash.
  weave::Loop loop;
  weave::Promise<int> promise;
  auto future = promise.get_future();
  std::error_code second, get_future;
  std::thread producer([&] {
    promise.set_value(1);
    second = future_error_of([&] { promise.set_value(2); });
    get_future = future_error_of([&] { (void)promise.get_future(); });
  });
  producer.join();
  EXPECT_EQ(second, std::future_errc::promise_already_satisfied);
  EXPECT_EQ(get_future, std::future_errc::no_state);
  EXPECT_FALSE(promise.try_set_value(3));
  EXPECT_EQ(future.get(), 1);
}

TEST(Future, GetFutureOfAMovedFromPromiseThrowsNoState) {
  weave::Loop loop;
  weave::Promise<int> promise;
  weave::Promise<int> other = std::move(promise);
  EXPECT_EQ(future_error_of([&] { (void)promise.get_future(); }), std::future_errc::no_state);
  EXPECT_TRUE(other.get_future().valid());
}

TEST(Future, ALoopDestroyedRightAfterAnotherThreadsCompletionIsSafe) {
  // The producer's reference goes with the wake-up, so the loop may free the state, and then
  // itself, while the producer is still inside the post that rings the loop's eventfd. The
  // inbox must outlive that post (ASan and TSan builds catch it if not).
  for (int i = 0; i < 300; ++i) {
    std::thread producer;
    {
      weave::Loop loop;
      weave::Promise<int> promise;
      auto future = promise.get_future();
      producer = std::thread([p = std::move(promise), i]() mutable { p.set_value(i); });
      EXPECT_EQ(future.get(), i);
    }
    producer.join();
  }
}

}  // namespace
