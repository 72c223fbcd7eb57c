#include "weave/loop.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "weave/errors.hpp"
#include "weave/event.hpp"
#include "weave/queue.hpp"
#include "weave/task.hpp"

namespace {

// A fiber that swallows its cancellation and waits again cannot be finished by close(): it is
// reported and abandoned. Primitives that outlive the loop may still hold its wait node, which
// lives on its stack: using them afterwards must be safe.
TEST(LoopCloseAbandon, AQueueThatOutlivesTheLoopCanStillBeUsed) {
  weave::Queue<int> q;
  std::vector<std::string> reports;
  {
    weave::Loop loop;
    loop.set_exception_handler([&](const weave::ErrorContext& c) { reports.push_back(c.message); });
    loop.spawn([&] {
      for (;;) try {
          q.get();
        } catch (const weave::Cancelled&) {
          // swallowed on purpose: the misbehaviour under test
        }
    });
    loop.call_soon([&] { loop.stop(); });
    loop.run();
  }  // close() abandons the stubborn task
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("abandoning it"), std::string::npos) << reports[0];
  q.put_nowait(1);  // would wake the abandoned getter: must be a harmless no-op
  EXPECT_EQ(q.size(), 1u);
}

TEST(LoopCloseAbandon, AnEventThatOutlivesTheLoopCanStillBeSet) {
  weave::Event ev;
  {
    weave::Loop loop;
    loop.set_exception_handler([](const weave::ErrorContext&) {});
    auto t = loop.spawn([&] {
      for (;;) try {
          ev.wait();
        } catch (const weave::Cancelled&) {
        }
    });
    loop.call_soon([&] { loop.stop(); });
    loop.run();
    loop.close();
    EXPECT_EQ(t.status(), weave::TaskStatus::abandoned);
    EXPECT_EQ(loop.live_fibers(), 0u);
  }
  ev.set();
  EXPECT_TRUE(ev.is_set());
}

}  // namespace
