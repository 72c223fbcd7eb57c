// The asyncio tutorial point: fibers of one loop take turns only at suspension points. A
// read-modify-write with no suspension inside needs no lock; put a suspension between the read
// and the write and updates get lost.

#include "weave/this_fiber.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "weave/clock.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"

namespace {

using namespace std::chrono_literals;

constexpr int kFibers = 100;
constexpr int kIncrements = 200;

// A deterministic stream of small numbers (no std::rand: the same run every time).
struct Lcg {
  std::uint64_t state;
  unsigned next(unsigned bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<unsigned>((state >> 33) % bound);
  }
};

// Reads, computes and writes with no suspension in between; suspends only afterwards.
TEST(UpdateCounter, IncrementsWithoutASuspensionInsideAreNeverLost) {
  weave::Loop loop;
  long counter = 0;
  for (int f = 0; f < kFibers; ++f) {
    loop.spawn([&counter] {
      for (int i = 0; i < kIncrements; ++i) {
        long read = counter;
        long updated = read + 1;
        counter = updated;
        weave::this_fiber::yield();
      }
    });
  }
  loop.run();
  EXPECT_EQ(counter, kFibers * kIncrements);
}

// The same with an irregular interleaving: every fiber suspends a varying number of times
// between its updates, by yields and by sleeps of varying (virtual) lengths.
TEST(UpdateCounter, IncrementsStayExactUnderAnIrregularInterleaving) {
  weave::ManualClock clock;
  weave::Loop::Options options;
  options.clock = &clock;
  weave::Loop loop(options);
  long counter = 0;
  for (int f = 0; f < kFibers; ++f) {
    loop.spawn([&counter, f] {
      Lcg rng{static_cast<std::uint64_t>(f) + 1};
      for (int i = 0; i < kIncrements; ++i) {
        long read = counter;
        counter = read + 1;
        for (unsigned y = rng.next(3); y > 0; --y) weave::this_fiber::yield();
        if (rng.next(2)) weave::this_fiber::sleep_for(std::chrono::milliseconds(rng.next(5)));
      }
    });
  }
  loop.run();
  EXPECT_EQ(counter, kFibers * kIncrements);
}

// A suspension between the read and the write lets every other fiber read the same old value.
// With FIFO scheduling the outcome is exact: each round, all fibers read the same value and
// all write that value plus one, so the counter ends at kIncrements instead of
// kFibers * kIncrements.
TEST(UpdateCounter, YieldBetweenReadAndWriteLosesUpdates) {
  weave::Loop loop;
  long counter = 0;
  for (int f = 0; f < kFibers; ++f) {
    loop.spawn([&counter] {
      for (int i = 0; i < kIncrements; ++i) {
        long read = counter;
        weave::this_fiber::yield();  // another fiber runs here
        counter = read + 1;
      }
    });
  }
  loop.run();
  EXPECT_LT(counter, kFibers * kIncrements);
  EXPECT_EQ(counter, kIncrements);
}

// A sleep is a suspension point too, even one that ends at once in virtual time.
TEST(UpdateCounter, SleepBetweenReadAndWriteLosesUpdates) {
  weave::ManualClock clock;
  weave::Loop::Options options;
  options.clock = &clock;
  weave::Loop loop(options);
  long counter = 0;
  for (int f = 0; f < kFibers; ++f) {
    loop.spawn([&counter] {
      for (int i = 0; i < kIncrements; ++i) {
        long read = counter;
        weave::this_fiber::sleep_for(1ms);
        counter = read + 1;
      }
    });
  }
  loop.run();
  EXPECT_EQ(counter, kIncrements);
}

// Waiting on another task is a suspension point as well; calling a function that does not
// suspend is not, however long it runs.
TEST(UpdateCounter, OnlyCallsThatSuspendLetOtherFibersRun) {
  weave::Loop loop;
  long counter = 0;
  auto busy_but_not_suspending = [] {
    volatile long x = 0;
    for (int i = 0; i < 1000; ++i) x = x + i;
    return x;
  };
  std::vector<weave::Task<void>> safe;
  for (int f = 0; f < kFibers; ++f) {
    safe.push_back(loop.spawn([&] {
      for (int i = 0; i < kIncrements / 10; ++i) {
        long read = counter;
        busy_but_not_suspending();
        counter = read + 1;
        weave::this_fiber::yield();
      }
    }));
  }
  loop.run();
  EXPECT_EQ(counter, kFibers * (kIncrements / 10));

  counter = 0;
  for (int f = 0; f < kFibers; ++f) {
    loop.spawn([&] {
      for (int i = 0; i < kIncrements / 10; ++i) {
        long read = counter;
        weave::spawn([] {}).join();  // suspends until the child ran
        counter = read + 1;
      }
    });
  }
  loop.run();
  EXPECT_LT(counter, kFibers * (kIncrements / 10));
}

// Fibers woken from another thread still run one at a time on the loop's thread: the
// unsynchronized counter stays exact.
TEST(UpdateCounter, FibersWokenFromAnotherThreadStillRunOneAtATimeOnTheLoopThread) {
  constexpr int kWakeups = 20;
  weave::Loop loop;
  long counter = 0;
  int off_thread_runs = 0;
  const auto loop_thread = std::this_thread::get_id();
  std::vector<std::vector<weave::Promise<void>>> promises(kFibers);
  for (auto& p : promises) p.resize(kWakeups);
  for (int f = 0; f < kFibers; ++f) {
    std::vector<weave::Future<void>> futures;
    for (auto& p : promises[f]) futures.push_back(p.get_future());
    loop.spawn([&, futures = std::move(futures)] {
      for (const auto& fut : futures) {
        fut.get();
        if (std::this_thread::get_id() != loop_thread) ++off_thread_runs;
        long read = counter;
        counter = read + 1;
      }
    });
  }
  std::thread waker([&] {
    for (int w = 0; w < kWakeups; ++w)
      for (int f = 0; f < kFibers; ++f) promises[f][w].set_value();
  });
  loop.run();
  waker.join();
  EXPECT_EQ(counter, kFibers * kWakeups);
  EXPECT_EQ(off_thread_runs, 0);
}

}  // namespace
