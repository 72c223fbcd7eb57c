// The example of the README, built and run by the tests so that it cannot rot. The README
// shows this file from its first include line on; a test checks that the two are the same.

#include <chrono>
#include <cstdio>

#include "weave/weave.hpp"

using namespace std::chrono_literals;

int main() {
  return weave::run([] {
    // Two fibers on one thread; each is plain sequential code.
    auto answer = weave::spawn([] {
      weave::this_fiber::sleep_for(100ms);  // suspends this fiber only
      return 42;
    });
    auto ticker = weave::spawn([] {
      for (;;) {
        std::puts("tick");
        weave::this_fiber::sleep_for(30ms);
      }
    });
    std::printf("answer: %d\n", answer.get());  // waits here while the ticker ticks
    ticker.cancel();  // weave::Cancelled is thrown inside the ticker, at its sleep_for
    return 0;
  });
}
