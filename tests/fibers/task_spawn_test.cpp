// Spawning fibers and using their Task handles (asyncio.create_task and asyncio.Task).

#include "weave/task.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "weave/clock.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;

// A loop on virtual time: sleeps take no real time and cannot flake.
weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

std::set<std::uint64_t> ids_of(const std::vector<weave::AnyTask>& tasks) {
  std::set<std::uint64_t> ids;
  for (const auto& t : tasks) ids.insert(t.id());
  return ids;
}

// ---- What spawn returns ------------------------------------------------------------------------

TEST(TaskSpawn, SpawnReturnsTaskOfTheFunctionsResultType) {
  weave::Loop loop;
  auto t = loop.spawn([](int x) { return x * 2; }, 21);
  static_assert(std::is_same_v<decltype(t), weave::Task<int>>);
  EXPECT_EQ(t.get(), 42);
}

TEST(TaskSpawn, VoidFunctionGivesTaskOfVoidAndRunsItsBody) {
  weave::Loop loop;
  int ran = 0;
  auto t = loop.spawn([&] { ++ran; });
  static_assert(std::is_same_v<decltype(t), weave::Task<void>>);
  static_assert(std::is_void_v<decltype(t.get())>);
  EXPECT_EQ(ran, 0) << "spawn only schedules the fiber; it runs when the loop runs";
  t.get();
  EXPECT_EQ(ran, 1);
}

TEST(TaskSpawn, MoveOnlyResultCanBeMovedOutOfGet) {
  weave::Loop loop;
  auto t = loop.spawn([] { return std::make_unique<int>(7); });
  static_assert(std::is_same_v<decltype(t), weave::Task<std::unique_ptr<int>>>);
  std::unique_ptr<int> p = std::move(t.get());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

TEST(TaskSpawn, MoveOnlyArgumentIsMovedIntoTheFiber) {
  weave::Loop loop;
  auto t = loop.spawn([](std::unique_ptr<int> p) { return *p + 1; }, std::make_unique<int>(41));
  EXPECT_EQ(t.get(), 42);
}

TEST(TaskSpawn, ArgumentsAreDecayCopiedAtSpawn) {
  weave::Loop loop;
  std::string text = "before";
  int number = 1;
  int& number_ref = number;
  auto t = loop.spawn([](const std::string& s, int n) { return s + ":" + std::to_string(n); }, text,
                      number_ref);
  // Changed after spawn but before the fiber runs: the fiber must see the copies.
  text = "after";
  number = 2;
  EXPECT_EQ(t.get(), "before:1");
}

TEST(TaskSpawn, StdRefPassesAReferenceLikeStdThread) {
  weave::Loop loop;
  int shared = 0;
  auto t = loop.spawn([](int& r) { r = 5; }, std::ref(shared));
  t.get();
  EXPECT_EQ(shared, 5);
}

TEST(TaskSpawn, FreeSpawnUsesTheCurrentLoop) {
  weave::Loop loop;
  auto t = weave::spawn([] { return &weave::Loop::current(); });
  EXPECT_EQ(&t.loop(), &loop);
  EXPECT_EQ(t.get(), &loop);
}

// ---- Waiting ---------------------------------------------------------------------------------

TEST(TaskSpawn, GetInsideAFiberSuspendsOnlyThatFiber) {
  weave::Loop loop;
  std::vector<std::string> log;
  weave::Promise<int> promise;
  auto producer = loop.spawn([&, f = promise.get_future()] { return f.get(); });
  auto waiter = loop.spawn([&] {
    log.push_back("waiter: waiting");
    int v = producer.get();
    log.push_back("waiter: got " + std::to_string(v));
  });
  auto ticker = loop.spawn([&] {
    for (int i = 1; i <= 3; ++i) {
      log.push_back("ticker " + std::to_string(i));
      weave::this_fiber::yield();
    }
    promise.set_value(9);
  });
  loop.run();
  std::vector<std::string> expected = {"waiter: waiting", "ticker 1", "ticker 2", "ticker 3",
                                       "waiter: got 9"};
  EXPECT_EQ(log, expected);
}

TEST(TaskSpawn, JoinInsideAFiberSuspendsOnlyThatFiberAndDoesNotReturnEarly) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  int ticks = 0;
  auto sleeper = loop.spawn([] { weave::this_fiber::sleep_for(10s); });
  auto joiner = loop.spawn([&] {
    sleeper.join();
    EXPECT_TRUE(sleeper.done());
    EXPECT_GE(loop.time().time_since_epoch(), std::chrono::nanoseconds(10s));
    return ticks;
  });
  auto ticker = loop.spawn([&] {
    for (int i = 0; i < 5; ++i) {
      ++ticks;
      weave::this_fiber::yield();
    }
  });
  EXPECT_EQ(joiner.get(), 5) << "the ticker kept running while the joiner waited";
}

TEST(TaskSpawn, GetOutsideAnyFiberRunsTheLoopUntilThatTaskIsDone) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto slow = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  auto quick = loop.spawn([] {
    weave::this_fiber::sleep_for(1s);
    return 3;
  });
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(quick.get(), 3);
  EXPECT_FALSE(loop.is_running());
  EXPECT_TRUE(quick.done());
  EXPECT_FALSE(slow.done()) << "get() runs the loop only until its own task is done";
  EXPECT_LT(loop.time().time_since_epoch(), std::chrono::nanoseconds(1h));
}

TEST(TaskSpawn, JoinOutsideAnyFiberRunsTheLoopUntilDone) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  bool finished = false;
  auto t = loop.spawn([&] {
    weave::this_fiber::sleep_for(5s);
    finished = true;
  });
  t.join();
  EXPECT_TRUE(finished);
  EXPECT_TRUE(t.done());
}

TEST(TaskSpawn, GetInsideACallbackThrowsLogicErrorInsteadOfBlockingTheLoop) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([] {
    weave::this_fiber::sleep_for(1s);
    return 1;
  });
  bool threw = false;
  std::string message;
  loop.call_soon([&] {
    try {
      t.get();
    } catch (const std::logic_error& e) {
      threw = true;
      message = e.what();
    }
  });
  loop.run();
  EXPECT_TRUE(threw);
  EXPECT_NE(message.find("Task::get"), std::string::npos) << message;
  EXPECT_EQ(t.get(), 1) << "the failed get() did not disturb the task";
}

TEST(TaskSpawn, JoinInsideACallbackThrowsLogicError) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([] { weave::this_fiber::sleep_for(1s); });
  bool threw = false;
  loop.call_soon([&] {
    try {
      t.join();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  loop.run();
  EXPECT_TRUE(threw);
}

TEST(TaskSpawn, GetOfADoneTaskInsideACallbackReturnsTheValue) {
  weave::Loop loop;
  auto t = loop.spawn([] { return 11; });
  t.join();
  int seen = 0;
  loop.call_soon([&] { seen = t.get(); });
  loop.run();
  EXPECT_EQ(seen, 11);
}

TEST(TaskSpawn, TaskWaitingForItselfThrowsLogicError) {
  weave::Loop loop;
  weave::Task<void> self;
  bool threw = false;
  self = loop.spawn([&] {
    try {
      self.join();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  self.get();
  EXPECT_TRUE(threw);
}

TEST(TaskSpawn, WaitingOnAnEmptyHandleThrowsLogicError) {
  weave::Loop loop;
  weave::Task<int> empty;
  EXPECT_FALSE(empty);
  EXPECT_THROW(empty.get(), std::logic_error);
  EXPECT_THROW(empty.join(), std::logic_error);
}

TEST(TaskSpawn, WaitingFromAFiberOnATaskOfAnotherLoopThrowsLogicError) {
  weave::Loop other;
  auto foreign = other.spawn([] { return 1; });
  weave::Loop loop;
  bool threw = false;
  loop.spawn([&] {
        try {
          foreign.get();
        } catch (const std::logic_error&) {
          threw = true;
        }
      })
      .get();
  EXPECT_TRUE(threw);
  EXPECT_EQ(foreign.get(), 1) << "the foreign task runs on its own loop";
}

// ---- State, names, ids -----------------------------------------------------------------------

TEST(TaskSpawn, StatusFollowsTheFibersLife) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::TaskStatus inside = weave::TaskStatus::created;
  auto sleeper = loop.spawn([&] {
    inside = weave::current_task().status();
    weave::this_fiber::sleep_for(1s);
  });
  auto yielder = loop.spawn([] {
    weave::this_fiber::yield();
    weave::this_fiber::yield();
  });
  weave::TaskStatus sleeper_seen{}, yielder_seen{};
  auto observer = loop.spawn([&] {
    // Runs after the sleeper went to sleep and the yielder queued itself again.
    sleeper_seen = sleeper.status();
    yielder_seen = yielder.status();
  });
  EXPECT_EQ(sleeper.status(), weave::TaskStatus::created);
  EXPECT_FALSE(sleeper.done());
  loop.run();
  EXPECT_EQ(inside, weave::TaskStatus::running);
  EXPECT_EQ(sleeper_seen, weave::TaskStatus::suspended);
  EXPECT_EQ(yielder_seen, weave::TaskStatus::ready);
  EXPECT_EQ(sleeper.status(), weave::TaskStatus::finished);
  EXPECT_TRUE(sleeper.done());
  EXPECT_FALSE(sleeper.cancelled());
}

TEST(TaskSpawn, NameComesFromSpawnOptionsOrDefaultsToTaskId) {
  weave::Loop loop;
  auto named = loop.spawn(weave::SpawnOptions{.name = "fetcher"}, [] { return 1; });
  auto anonymous = loop.spawn([] { return 2; });
  EXPECT_EQ(named.name(), "fetcher");
  EXPECT_EQ(anonymous.name(), "task-" + std::to_string(anonymous.id()));
  std::string seen_inside;
  auto t = weave::spawn(weave::SpawnOptions{.name = "inner"},
                        [&] { seen_inside = weave::current_task().name(); });
  t.get();
  EXPECT_EQ(seen_inside, "inner");
  anonymous.set_name("renamed");
  EXPECT_EQ(anonymous.name(), "renamed");
  loop.run();
}

TEST(TaskSpawn, IdsAreUniqueAndIncreaseInSpawnOrder) {
  weave::Loop loop;
  std::vector<weave::Task<void>> tasks;
  for (int i = 0; i < 10; ++i) tasks.push_back(loop.spawn([] {}));
  for (std::size_t i = 1; i < tasks.size(); ++i) EXPECT_GT(tasks[i].id(), tasks[i - 1].id());
  loop.run();
}

TEST(TaskSpawn, HandleCopiesReferToTheSameTask) {
  weave::Loop loop;
  auto t = loop.spawn([] { return 4; });
  weave::Task<int> copy = t;
  weave::AnyTask erased = t;
  EXPECT_TRUE(copy == t);
  EXPECT_TRUE(erased == t);
  EXPECT_EQ(erased.id(), t.id());
  EXPECT_EQ(copy.get(), 4);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(erased.done());
}

TEST(TaskSpawn, DroppingEveryHandleDoesNotCancelTheTask) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  bool finished = false;
  {
    auto t = loop.spawn([&] {
      weave::this_fiber::sleep_for(1s);
      finished = true;
    });
  }
  loop.run();
  EXPECT_TRUE(finished);
}

// ---- current_task and all_tasks
// ------------------------------------------------------------------

TEST(TaskSpawn, CurrentTaskInsideAFiberIsItsOwnHandle) {
  weave::Loop loop;
  weave::AnyTask seen_a, seen_b;
  auto a = loop.spawn([&] { seen_a = weave::current_task(); });
  auto b = loop.spawn([&] {
    weave::this_fiber::yield();
    seen_b = weave::current_task();
  });
  loop.run();
  ASSERT_TRUE(seen_a);
  ASSERT_TRUE(seen_b);
  EXPECT_TRUE(seen_a == a);
  EXPECT_TRUE(seen_b == b);
  EXPECT_FALSE(seen_a == seen_b);
}

TEST(TaskSpawn, CurrentTaskIsEmptyOutsideAnyFiber) {
  weave::Loop loop;
  EXPECT_FALSE(weave::current_task());
  EXPECT_FALSE(weave::this_fiber::in_fiber());
  bool callback_sees_task = true;
  bool callback_in_fiber = true;
  auto t = loop.spawn([&] {
    EXPECT_TRUE(weave::this_fiber::in_fiber());
    loop.call_soon([&] {
      callback_sees_task = static_cast<bool>(weave::current_task());
      callback_in_fiber = weave::this_fiber::in_fiber();
    });
    weave::this_fiber::yield();
  });
  loop.run();
  EXPECT_FALSE(callback_sees_task);
  EXPECT_FALSE(callback_in_fiber);
  EXPECT_FALSE(weave::current_task());
}

TEST(TaskSpawn, AllTasksListsExactlyTheTasksThatAreNotDone) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  EXPECT_TRUE(loop.all_tasks().empty());
  auto quick = loop.spawn([] {});
  auto slow = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  auto medium = loop.spawn([] { weave::this_fiber::sleep_for(1s); });
  EXPECT_EQ(ids_of(loop.all_tasks()), (std::set{quick.id(), slow.id(), medium.id()}))
      << "tasks that have not started yet are alive";
  std::set<std::uint64_t> seen_inside, seen_inside_free;
  auto observer = loop.spawn([&] {
    weave::this_fiber::sleep_for(2s);
    seen_inside = ids_of(loop.all_tasks());
    seen_inside_free = ids_of(weave::all_tasks());
  });
  observer.get();
  // quick and medium are done; slow sleeps; the observer itself is running.
  EXPECT_EQ(seen_inside, (std::set{slow.id(), observer.id()}));
  EXPECT_EQ(seen_inside_free, seen_inside);
  EXPECT_EQ(ids_of(loop.all_tasks()), std::set{slow.id()});
  EXPECT_EQ(ids_of(weave::all_tasks()), std::set{slow.id()});
  loop.run();
  EXPECT_TRUE(loop.all_tasks().empty());
}

// ---- Done callbacks --------------------------------------------------------------------------

TEST(TaskSpawn, DoneCallbackRunsOnTheLoopAfterCompletion) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  auto t = loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    log.push_back("body done");
    return 6;
  });
  bool in_fiber = true;
  bool was_done = false;
  int value = 0;
  t.add_done_callback([&](const weave::Task<int>& task) {
    log.push_back("callback");
    in_fiber = weave::this_fiber::in_fiber();
    was_done = task.done();
    value = task.get();
  });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"body done", "callback"}));
  EXPECT_FALSE(in_fiber);
  EXPECT_TRUE(was_done);
  EXPECT_EQ(value, 6);
}

TEST(TaskSpawn, DoneCallbackAddedAfterCompletionStillRunsOnALaterTurn) {
  weave::Loop loop;
  auto t = loop.spawn([] { return 1; });
  t.join();
  int calls = 0;
  t.add_done_callback([&] { ++calls; });
  EXPECT_EQ(calls, 0) << "the callback runs on the loop, not inside add_done_callback";
  loop.run();
  EXPECT_EQ(calls, 1);
}

TEST(TaskSpawn, DoneCallbacksRunOnceEachInTheOrderAdded) {
  weave::Loop loop;
  auto t = loop.spawn([] { weave::this_fiber::yield(); });
  std::vector<int> order;
  for (int i = 0; i < 4; ++i) t.add_done_callback([&order, i] { order.push_back(i); });
  weave::AnyTask erased = t;
  erased.add_done_callback(
      [&](const weave::AnyTask& task) { order.push_back(task.done() ? 100 : -100); });
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 100}));
}

// ---- Scheduling order ------------------------------------------------------------------------

TEST(TaskSpawn, FibersStartInSpawnOrderAndYieldRoundRobin) {
  weave::Loop loop;
  std::string trace;
  for (char c : std::string("ABC")) {
    loop.spawn([&trace, c] {
      trace += c;
      weave::this_fiber::yield();
      trace += static_cast<char>(c + 32);  // lower case
    });
  }
  loop.run();
  EXPECT_EQ(trace, "ABCabc");
}

TEST(TaskSpawn, ChildSpawnedFromAFiberRunsAfterTheParentSuspends) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto parent = loop.spawn([&] {
    log.push_back("parent before");
    auto child = weave::spawn([&] { log.push_back("child"); });
    log.push_back("parent after spawn");
    child.join();
    log.push_back("parent after join");
  });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"parent before", "parent after spawn", "child",
                                           "parent after join"}));
}

TEST(TaskSpawn, EagerSpawnRunsTheChildBeforeTheParentContinues) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto parent = loop.spawn([&] {
    log.push_back("parent before");
    auto child = weave::spawn(weave::SpawnOptions{.name = "child", .eager = true}, [&] {
      log.push_back("child start");
      weave::this_fiber::yield();
      log.push_back("child end");
    });
    log.push_back("parent after spawn");
    EXPECT_FALSE(child.done());
  });
  auto other = loop.spawn([&] { log.push_back("other"); });
  loop.run();
  // The child runs until its first suspension, then the parent resumes at once (before
  // `other`, which was ready before the child existed).
  EXPECT_EQ(log, (std::vector<std::string>{"parent before", "child start", "parent after spawn",
                                           "other", "child end"}));
}

TEST(TaskSpawn, EagerChildThatNeverSuspendsIsDoneWhenSpawnReturns) {
  weave::Loop loop;
  auto parent = loop.spawn([] {
    auto child = weave::spawn(weave::SpawnOptions{.name = "eager", .eager = true}, [] {
      EXPECT_EQ(weave::current_task().name(), "eager");
      return 7;
    });
    EXPECT_TRUE(child.done());
    EXPECT_EQ(child.status(), weave::TaskStatus::finished);
    return child.get();
  });
  EXPECT_EQ(parent.get(), 7);
  EXPECT_EQ(loop.live_fibers(), 0u);
}

TEST(TaskSpawn, EagerRecursiveSpawnComputesTheRightResult) {
  weave::Loop loop;
  std::function<long(int)> fib = [&](int n) -> long {
    if (n < 2) return n;
    auto a = weave::spawn(weave::SpawnOptions{.name = "fib", .eager = true}, fib, n - 1);
    auto b = weave::spawn(weave::SpawnOptions{.name = "fib", .eager = true}, fib, n - 2);
    return a.get() + b.get();
  };
  auto t = loop.spawn(fib, 15);
  EXPECT_EQ(t.get(), 610);
  EXPECT_EQ(loop.live_fibers(), 0u);
}

// ---- live_fibers -------------------------------------------------------------------------------

TEST(TaskSpawn, LiveFibersCountsStartedFibersUntilTheyFinish) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  EXPECT_EQ(loop.live_fibers(), 0u);
  auto a = loop.spawn([] { weave::this_fiber::sleep_for(1s); });
  auto b = loop.spawn([] { weave::this_fiber::sleep_for(2s); });
  auto c = loop.spawn([] {});
  EXPECT_EQ(loop.live_fibers(), 3u);
  std::size_t inside = 0;
  auto counter = loop.spawn([&] {
    weave::this_fiber::sleep_for(1500ms);
    inside = loop.live_fibers();  // a and c are done; b and the counter itself are alive
  });
  loop.run();
  EXPECT_EQ(inside, 2u);
  EXPECT_EQ(loop.live_fibers(), 0u);
}

}  // namespace

namespace {

TEST(TaskSpawn, AnAbsurdStackSizeIsRefusedAndTheCapturesAreReleased) {
  weave::Loop loop;
  auto token = std::make_shared<int>(7);
  std::weak_ptr<int> alive = token;
  weave::SpawnOptions options;
  options.stack_size = std::size_t{8} << 30;  // 8 GiB
  EXPECT_THROW(loop.spawn(options, [t = std::move(token)] { return *t; }), std::invalid_argument);
  EXPECT_TRUE(alive.expired());  // the task that was never started freed its function
  EXPECT_EQ(loop.live_fibers(), 0u);
  // The loop is fine afterwards.
  EXPECT_EQ(loop.run_until_complete(loop.spawn([] { return 1; })), 1);
}

TEST(TaskSpawn, TheFunctionIsDestroyedWhenTheTaskEndsNotWhenTheHandleGoes) {
  weave::Loop loop;
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> alive = token;
  auto t = loop.spawn([t = std::move(token)] { return *t + 1; });
  EXPECT_FALSE(alive.expired());
  EXPECT_EQ(loop.run_until_complete(t), 2);
  EXPECT_TRUE(alive.expired());  // t still holds the task, not the captures
  // And for a task cancelled before it ever ran.
  auto token2 = std::make_shared<int>(2);
  std::weak_ptr<int> alive2 = token2;
  auto c = loop.spawn([t = std::move(token2)] { return *t; });
  c.cancel();
  loop.run();
  EXPECT_TRUE(c.cancelled());
  EXPECT_TRUE(alive2.expired());
}

}  // namespace
