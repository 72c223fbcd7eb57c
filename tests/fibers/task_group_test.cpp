// weave::task_group: structured concurrency. The group returns only after every child has
// finished; the first failure cancels the siblings and the body; the errors come back together
// in one ExceptionGroup; cancelling the parent cancels the children and is rethrown unchanged.

#include "weave/task_group.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/exception_group.hpp"
#include "weave/loop.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using weave::this_fiber::sleep_for;

weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

// Loop time since the start of a ManualClock (which starts at zero), from inside a fiber.
nanoseconds now() { return weave::Loop::current().time().time_since_epoch(); }

std::string at(const std::string& what) { return what + "@" + std::to_string(now() / 1ms) + "ms"; }

// The messages of the std::exceptions in a group, in order.
std::vector<std::string> messages(const weave::ExceptionGroup& eg) {
  std::vector<std::string> out;
  for (const std::exception_ptr& p : eg.exceptions()) {
    try {
      std::rethrow_exception(p);
    } catch (const std::exception& e) {
      out.emplace_back(e.what());
    }
  }
  return out;
}

// Sleeps `d`, logging "<name> cancelled" if cancelled meanwhile.
void sleeper(std::vector<std::string>* log, std::string name, nanoseconds d) {
  try {
    sleep_for(d);
    log->push_back(at(name + " done"));
  } catch (const weave::Cancelled&) {
    log->push_back(at(name + " cancelled"));
    throw;
  }
}

// Counts the loop's "never retrieved" and other error reports.
struct ErrorReports {
  explicit ErrorReports(weave::Loop& loop) {
    loop.set_exception_handler([this](const weave::ErrorContext& c) { list.push_back(c.message); });
  }
  std::vector<std::string> list;
};

// ---- Waiting for the children ------------------------------------------------------------------

TEST(TaskGroup, ReturnsOnlyAfterEveryChildHasFinished) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    weave::task_group([&](weave::TaskGroup& g) {
      g.spawn(sleeper, &log, "a", 3s);
      g.spawn(sleeper, &log, "b", 1s);
      g.spawn(sleeper, &log, "c", 2s);
      EXPECT_EQ(g.size(), 3u);
      log.push_back(at("body returns"));
    });
    log.push_back(at("group returned"));
    EXPECT_EQ(log, (std::vector<std::string>{"body returns@0ms", "b done@1000ms", "c done@2000ms",
                                             "a done@3000ms", "group returned@3000ms"}));
    EXPECT_EQ(weave::Loop::current().live_fibers(), 1u) << "only the main fiber is left";
  });
}

TEST(TaskGroup, ReturnsTheBodysValue) {
  weave::ManualClock clock;
  int r = weave::run(manual_time(clock), [] {
    return weave::task_group([](weave::TaskGroup& g) {
      auto a = g.spawn([] {
        sleep_for(1s);
        return 40;
      });
      auto b = g.spawn([](int x) { return x; }, 2);
      return a.get() + b.get();
    });
  });
  EXPECT_EQ(r, 42);
}

TEST(TaskGroup, BodyMayReturnAMoveOnlyValue) {
  weave::Loop loop;
  auto t = loop.spawn([] {
    return weave::task_group([](weave::TaskGroup& g) {
      auto p = g.spawn([] { return std::make_unique<int>(5); });
      return std::move(p.get());
    });
  });
  EXPECT_EQ(*loop.run_until_complete(t), 5);
}

TEST(TaskGroup, ChildrenRunConcurrently) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    weave::task_group([](weave::TaskGroup& g) {
      for (int i = 0; i < 10; ++i) g.spawn([] { sleep_for(1s); });
    });
    EXPECT_EQ(now(), 1s);
  });
}

TEST(TaskGroup, EmptyGroupReturnsAtOnce) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    weave::task_group([](weave::TaskGroup& g) { EXPECT_EQ(g.size(), 0u); });
    EXPECT_EQ(now(), 0s);
  });
}

TEST(TaskGroup, EagerChildrenStartBeforeTheBodyContinues) {
  weave::Loop loop;
  std::vector<std::string> log;
  loop.run_until_complete(loop.spawn([&] {
    weave::task_group([&](weave::TaskGroup& g) {
      g.spawn(weave::SpawnOptions{.name = "eager", .eager = true}, [&] { log.push_back("child"); });
      log.push_back("body");
    });
  }));
  EXPECT_EQ(log, (std::vector<std::string>{"child", "body"}));
}

TEST(TaskGroup, ManyShortLivedChildrenReuseTheirSlots) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int finished = 0;
    weave::task_group([&](weave::TaskGroup& g) {
      for (int i = 0; i < 1000; ++i) {
        g.spawn([&] { ++finished; });
        if (i % 10 == 9) {
          sleep_for(1ms);  // lets the batch finish
          EXPECT_EQ(g.size(), 0u);
        }
      }
    });
    EXPECT_EQ(finished, 1000);
  });
}

// ---- Failures --------------------------------------------------------------------------------

TEST(TaskGroup, FirstFailureCancelsTheSiblings) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    weave::Task<void> sibling;
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        g.spawn([] {
          sleep_for(1s);
          throw std::runtime_error("boom");
        });
        sibling = g.spawn(sleeper, &log, "sibling", 10s);
      });
      ADD_FAILURE() << "task_group did not throw";
    } catch (const weave::ExceptionGroup& eg) {
      EXPECT_EQ(messages(eg), std::vector<std::string>{"boom"});
    }
    EXPECT_EQ(log, std::vector<std::string>{"sibling cancelled@1000ms"});
    EXPECT_TRUE(sibling.cancelled());
    EXPECT_EQ(now(), 1s);
  });
}

TEST(TaskGroup, FailureWhileTheBodyIsSuspendedCancelsTheBody) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    EXPECT_THROW(weave::task_group([&](weave::TaskGroup& g) {
                   g.spawn([] {
                     sleep_for(1s);
                     throw std::runtime_error("boom");
                   });
                   sleeper(&log, "body", 1h);
                   log.push_back("body went on");
                 }),
                 weave::ExceptionGroup);
    EXPECT_EQ(log, std::vector<std::string>{"body cancelled@1000ms"});
    EXPECT_EQ(now(), 1s);
  });
}

TEST(TaskGroup, BodyThatSwallowsTheCancellationIsCancelledAgainAtItsNextCheckpoint) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    EXPECT_THROW(weave::task_group([&](weave::TaskGroup& g) {
                   g.spawn([] {
                     sleep_for(1s);
                     throw std::runtime_error("boom");
                   });
                   try {
                     sleep_for(1h);
                   } catch (const weave::Cancelled&) {
                     log.push_back(at("swallowed"));
                   }
                   sleeper(&log, "body again", 1h);
                 }),
                 weave::ExceptionGroup);
    EXPECT_EQ(log, (std::vector<std::string>{"swallowed@1000ms", "body again cancelled@1000ms"}));
  });
}

TEST(TaskGroup, SeveralFailuresAreReportedTogetherInTheOrderTheyHappened) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        g.spawn([] {
          sleep_for(2s);
          throw std::runtime_error("second");
        });
        g.spawn([] {
          sleep_for(1s);
          throw std::runtime_error("first");
        });
        g.spawn([] {
          sleep_for(2s);
          throw std::runtime_error("third");
        });
        // Fails while being cancelled: reported too.
        g.spawn([] {
          try {
            sleep_for(1h);
          } catch (const weave::Cancelled&) {
            throw std::runtime_error("cleanup failed");
          }
        });
      });
      ADD_FAILURE() << "task_group did not throw";
    } catch (const weave::ExceptionGroup& eg) {
      // "first" fails alone at 1 s and cancels the rest; "second" and "third" are woken by
      // their cancellation, not their timers, so they never throw.
      EXPECT_EQ(messages(eg), (std::vector<std::string>{"first", "cleanup failed"}));
      EXPECT_EQ(eg.size(), 2u);
    }
  });
}

TEST(TaskGroup, FailuresAtTheSameMomentAreAllReported) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        for (std::string name : {"a", "b", "c"})
          g.spawn([name] {
            sleep_for(1s);
            throw std::runtime_error(name);
          });
      });
      ADD_FAILURE() << "task_group did not throw";
    } catch (const weave::ExceptionGroup& eg) {
      EXPECT_EQ(messages(eg), (std::vector<std::string>{"a", "b", "c"}));
      EXPECT_EQ(eg.count<std::runtime_error>(), 3u);
      EXPECT_STREQ(eg.what(),
                   "weave::ExceptionGroup: unhandled errors in a task group (3 exceptions): "
                   "[1] a; [2] b; [3] c");
    }
  });
}

TEST(TaskGroup, ACancelledChildIsNotAnError) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    int r = weave::task_group([&](weave::TaskGroup& g) {
      auto a = g.spawn(sleeper, &log, "a", 10s);
      auto b = g.spawn(sleeper, &log, "b", 2s);
      sleep_for(1s);
      a.cancel();
      return 1;
    });
    EXPECT_EQ(r, 1);
    EXPECT_EQ(log, (std::vector<std::string>{"a cancelled@1000ms", "b done@2000ms"}));
  });
}

TEST(TaskGroup, AChildCancelledBeforeItRanIsNotAnError) {
  weave::Loop loop;
  bool ran = false;
  loop.run_until_complete(loop.spawn([&] {
    weave::task_group([&](weave::TaskGroup& g) {
      auto t = g.spawn([&] { ran = true; });
      t.cancel();
    });
  }));
  EXPECT_FALSE(ran);
}

TEST(TaskGroup, BodyExceptionCancelsTheChildrenAndIsReportedInTheGroup) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        g.spawn(sleeper, &log, "child", 10s);
        g.spawn([] {
          try {
            sleep_for(10s);
          } catch (const weave::Cancelled&) {
            throw std::logic_error("child cleanup failed");
          }
        });
        sleep_for(1s);
        throw std::runtime_error("body failed");
      });
      ADD_FAILURE() << "task_group did not throw";
    } catch (const weave::ExceptionGroup& eg) {
      EXPECT_EQ(messages(eg), (std::vector<std::string>{"body failed", "child cleanup failed"}));
      ASSERT_NE(eg.find<std::logic_error>(), nullptr);
      EXPECT_STREQ(eg.find<std::logic_error>()->what(), "child cleanup failed");
    }
    EXPECT_EQ(log, std::vector<std::string>{"child cancelled@1000ms"});
  });
}

TEST(TaskGroup, ChildSpawnedWhileTheGroupFailsIsCancelledBeforeItRuns) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    bool late_ran = false;
    bool eager_ran = false;
    weave::Task<void> late;
    weave::Task<void> eager;
    EXPECT_THROW(weave::task_group([&](weave::TaskGroup& g) {
                   g.spawn([] {
                     sleep_for(1s);
                     throw std::runtime_error("boom");
                   });
                   try {
                     sleep_for(1h);
                   } catch (const weave::Cancelled&) {
                     EXPECT_TRUE(g.cancelling());
                     late = g.spawn([&] { late_ran = true; });
                     eager = g.spawn(weave::SpawnOptions{.eager = true}, [&] { eager_ran = true; });
                     throw;
                   }
                 }),
                 weave::ExceptionGroup);
    EXPECT_FALSE(late_ran);
    EXPECT_FALSE(eager_ran);
    EXPECT_TRUE(late.cancelled());
    EXPECT_TRUE(eager.cancelled());
  });
}

TEST(TaskGroup, ChildExceptionsCountAsRetrieved) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  ErrorReports reports(loop);
  loop.run_until_complete(loop.spawn([] {
    try {
      weave::task_group([](weave::TaskGroup& g) {
        g.spawn([] { throw std::runtime_error("a"); });
        g.spawn([] { throw std::runtime_error("b"); });
      });
    } catch (const weave::ExceptionGroup&) {
    }
  }));
  loop.close();
  EXPECT_TRUE(reports.list.empty()) << reports.list.front();
}

// ---- Children spawning children ------------------------------------------------------------

TEST(TaskGroup, ChildrenMaySpawnMoreChildrenIntoTheGroup) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    weave::task_group([&](weave::TaskGroup& g) {
      g.spawn([&] {
        sleep_for(1s);
        g.spawn([&] {
          sleep_for(2s);
          g.spawn(sleeper, &log, "great-grandchild", 1s);
          log.push_back(at("grandchild done"));
        });
        log.push_back(at("child done"));
      });
      // The body returns at once: the parent is parked at the end of the group when the
      // grandchildren are spawned.
    });
    log.push_back(at("group returned"));
    EXPECT_EQ(log,
              (std::vector<std::string>{"child done@1000ms", "grandchild done@3000ms",
                                        "great-grandchild done@4000ms", "group returned@4000ms"}));
  });
}

TEST(TaskGroup, AGrandchildsFailureCancelsTheWholeGroup) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    EXPECT_THROW(weave::task_group([&](weave::TaskGroup& g) {
                   g.spawn(sleeper, &log, "sibling", 1h);
                   g.spawn([&] {
                     g.spawn([] {
                       sleep_for(1s);
                       throw std::runtime_error("grandchild");
                     });
                     sleeper(&log, "child", 1h);
                   });
                   sleeper(&log, "body", 1h);
                 }),
                 weave::ExceptionGroup);
    // The children are cancelled first, then the body.
    EXPECT_EQ(log, (std::vector<std::string>{"sibling cancelled@1000ms", "child cancelled@1000ms",
                                             "body cancelled@1000ms"}));
  });
}

// ---- The parent's cancellation --------------------------------------------------------------

TEST(TaskGroup, CancellingTheParentCancelsTheChildrenAndRethrowsCancelledAfterThem) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  auto parent = loop.spawn([&] {
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        g.spawn([&] {
          try {
            sleep_for(1h);
          } catch (const weave::Cancelled&) {
            weave::shield([] { sleep_for(2s); });  // a slow cleanup
            log.push_back(at("child cleaned up"));
            throw;
          }
        });
        sleeper(&log, "body", 1h);
      });
    } catch (const weave::ExceptionGroup&) {
      log.push_back("wrapped in a group");
    } catch (const weave::Cancelled&) {
      log.push_back(at("parent got Cancelled"));
      throw;
    }
  });
  loop.call_later(1s, [&] { parent.cancel(); });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"body cancelled@1000ms", "child cleaned up@3000ms",
                                           "parent got Cancelled@3000ms"}));
  EXPECT_TRUE(parent.cancelled());
  EXPECT_EQ(loop.live_fibers(), 0u);
}

TEST(TaskGroup, CancellingTheParentWhileItWaitsAtTheEndCancelsTheChildren) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  auto parent = loop.spawn([&] {
    weave::task_group([&](weave::TaskGroup& g) {
      g.spawn(sleeper, &log, "a", 1h);
      g.spawn(sleeper, &log, "b", 1h);
    });
    log.push_back("group returned");
  });
  loop.call_later(1s, [&] { parent.cancel(); });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"a cancelled@1000ms", "b cancelled@1000ms"}));
  EXPECT_TRUE(parent.cancelled());
}

TEST(TaskGroup, EnclosingFailAfterCancelsTheGroupAndReportsTimeout) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    EXPECT_THROW(weave::fail_after(1s,
                                   [&] {
                                     weave::task_group([&](weave::TaskGroup& g) {
                                       g.spawn(sleeper, &log, "child", 1h);
                                       sleeper(&log, "body", 1h);
                                     });
                                   }),
                 weave::TimeoutError);
    EXPECT_EQ(log, (std::vector<std::string>{"body cancelled@1000ms", "child cancelled@1000ms"}));
  });
}

TEST(TaskGroup, EnclosingMoveOnAfterEndsTheGroupQuietly) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    bool cut = weave::move_on_after(1s, [&] {
      weave::task_group([&](weave::TaskGroup& g) { g.spawn(sleeper, &log, "child", 1h); });
    });
    EXPECT_TRUE(cut);
    EXPECT_EQ(log, std::vector<std::string>{"child cancelled@1000ms"});
  });
}

TEST(TaskGroup, ParentCancelledWhileAChildFailsReportsTheErrorsAndKeepsTheCancellation) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  auto parent = loop.spawn([&] {
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        g.spawn([] {
          try {
            sleep_for(1h);
          } catch (const weave::Cancelled&) {
            throw std::runtime_error("cleanup failed");
          }
        });
        sleep_for(1h);
      });
    } catch (const weave::ExceptionGroup& eg) {
      log.push_back("group: " + messages(eg).at(0));
    }
    try {
      weave::this_fiber::yield();
      log.push_back("the cancellation was lost");
    } catch (const weave::Cancelled&) {
      log.push_back("cancelled at the next checkpoint");
      throw;
    }
  });
  loop.call_later(1s, [&] { parent.cancel(); });
  loop.run();
  EXPECT_EQ(
      log, (std::vector<std::string>{"group: cleanup failed", "cancelled at the next checkpoint"}));
  EXPECT_TRUE(parent.cancelled());
}

TEST(TaskGroup, ParentCancelArrivingWhileTheGroupFailsIsDeliveredAfterIt) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  auto parent = loop.spawn([&] {
    try {
      weave::task_group([&](weave::TaskGroup& g) {
        g.spawn([] {
          sleep_for(1s);
          throw std::runtime_error("boom");
        });
        g.spawn([] {
          try {
            sleep_for(1h);
          } catch (const weave::Cancelled&) {
            weave::shield([] { sleep_for(2s); });  // still cleaning up when cancel() comes
            throw;
          }
        });
        sleep_for(1h);
      });
    } catch (const weave::ExceptionGroup&) {
      log.push_back(at("group"));
    }
    try {
      weave::this_fiber::yield();
    } catch (const weave::Cancelled&) {
      log.push_back(at("cancelled"));
      throw;
    }
  });
  loop.call_later(2s, [&] { parent.cancel(); });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"group@3000ms", "cancelled@3000ms"}));
  EXPECT_TRUE(parent.cancelled());
}

TEST(TaskGroup, TheEndOfTheGroupChecksForCancellationOnlyWhenChildrenAreLeft) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto t = loop.spawn([&] {
    weave::task_group([](weave::TaskGroup&) { weave::current_task().cancel(); });
    log.push_back("empty group returned");
    weave::task_group([&](weave::TaskGroup& g) { g.spawn([&] { log.push_back("child ran"); }); });
    log.push_back("second group returned");
  });
  loop.run();
  // The second group's end has a child to wait for: the pending cancel() is thrown there and
  // passed on to the child, which had not run yet and never does.
  EXPECT_EQ(log, std::vector<std::string>{"empty group returned"});
  EXPECT_TRUE(t.cancelled());
}

// ---- Nested groups -------------------------------------------------------------------------

TEST(TaskGroup, NestedGroupFailurePropagatesToTheOuterGroup) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    try {
      weave::task_group([&](weave::TaskGroup& outer) {
        outer.spawn(sleeper, &log, "outer child", 1h);
        weave::task_group([&](weave::TaskGroup& inner) {
          inner.spawn(sleeper, &log, "inner child", 1h);
          inner.spawn([] {
            sleep_for(1s);
            throw std::runtime_error("inner failure");
          });
          sleeper(&log, "inner body", 1h);
        });
        log.push_back("outer body went on");
      });
      ADD_FAILURE() << "task_group did not throw";
    } catch (const weave::ExceptionGroup& eg) {
      ASSERT_EQ(eg.size(), 1u);
      const auto* nested = eg.find<weave::ExceptionGroup>();
      ASSERT_NE(nested, nullptr);
      EXPECT_EQ(messages(*nested), std::vector<std::string>{"inner failure"});
    }
    EXPECT_EQ(log, (std::vector<std::string>{"inner child cancelled@1000ms",
                                             "inner body cancelled@1000ms",
                                             "outer child cancelled@1000ms"}));
    EXPECT_EQ(now(), 1s);
  });
}

TEST(TaskGroup, OuterFailureCancelsAnInnerGroupWithoutAddingErrors) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    try {
      weave::task_group([&](weave::TaskGroup& outer) {
        outer.spawn([] {
          sleep_for(1s);
          throw std::runtime_error("outer failure");
        });
        weave::task_group([&](weave::TaskGroup& inner) {
          inner.spawn(sleeper, &log, "inner child", 1h);
          // The inner body returns: the parent waits at the inner group's end when the outer
          // group's cancellation arrives.
        });
        log.push_back("outer body went on");
      });
      ADD_FAILURE() << "task_group did not throw";
    } catch (const weave::ExceptionGroup& eg) {
      EXPECT_EQ(messages(eg), std::vector<std::string>{"outer failure"});
    }
    EXPECT_EQ(log, std::vector<std::string>{"inner child cancelled@1000ms"});
  });
}

TEST(TaskGroup, GroupInsideAChildFailsThatChild) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    try {
      weave::task_group([&](weave::TaskGroup& outer) {
        outer.spawn([] {
          weave::task_group([](weave::TaskGroup& inner) {
            inner.spawn([] { throw std::runtime_error("deep"); });
          });
        });
      });
      ADD_FAILURE() << "task_group did not throw";
    } catch (const weave::ExceptionGroup& eg) {
      const auto* nested = eg.find<weave::ExceptionGroup>();
      ASSERT_NE(nested, nullptr);
      EXPECT_EQ(messages(*nested), std::vector<std::string>{"deep"});
    }
  });
}

// ---- Misuse --------------------------------------------------------------------------------

TEST(TaskGroup, OutsideAFiberThrowsLogicError) {
  weave::Loop loop;
  EXPECT_THROW(weave::task_group([](weave::TaskGroup&) {}), std::logic_error);
}

TEST(ExceptionGroup, SummarisesAtMostTenExceptions) {
  std::vector<std::exception_ptr> list;
  for (int i = 0; i < 12; ++i)
    list.push_back(std::make_exception_ptr(std::runtime_error("e" + std::to_string(i))));
  list.push_back(std::make_exception_ptr(42));
  weave::ExceptionGroup eg(std::move(list), "twelve and a bit");
  EXPECT_STREQ(eg.what(),
               "weave::ExceptionGroup: twelve and a bit (13 exceptions): [1] e0; [2] e1; [3] e2; "
               "[4] e3; [5] e4; [6] e5; [7] e6; [8] e7; [9] e8; [10] e9; and 3 more");
  EXPECT_EQ(eg.count<std::runtime_error>(), 12u);
  EXPECT_EQ(eg.find<std::logic_error>(), nullptr);
  weave::ExceptionGroup copy = eg;
  EXPECT_EQ(copy.exceptions().size(), 13u);
}

TEST(ExceptionGroup, NamesExceptionsNotDerivedFromStdException) {
  weave::ExceptionGroup eg({std::make_exception_ptr(7)});
  EXPECT_STREQ(eg.what(),
               "weave::ExceptionGroup: unhandled errors in a task group (1 exception): [1] an "
               "exception not derived from std::exception");
}

}  // namespace
