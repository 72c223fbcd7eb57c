#include <gtest/gtest.h>

#include "weave/weave.hpp"

TEST(Smoke, SpawnAndGet) {
  int r = weave::run([] {
    auto t = weave::spawn(
        [](int x) {
          weave::this_fiber::yield();
          return x * 2;
        },
        21);
    return t.get();
  });
  EXPECT_EQ(r, 42);
}
