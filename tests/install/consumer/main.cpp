// The program of the consumer project: it only needs <weave/weave.hpp> and weave::weave.

#include <chrono>
#include <cstdio>
#include <weave/weave.hpp>

int main() {
  weave::ManualClock clock;  // virtual time: the sleeps below take no real time
  weave::Loop::Options options;
  options.clock = &clock;
  int answer = weave::run(options, [] {
    auto a = weave::spawn([] {
      weave::this_fiber::sleep_for(std::chrono::seconds(2));
      return 40;
    });
    auto b = weave::spawn([](int x) { return x + 1; }, 1);
    return a.get() + b.get();  // 40 + 2
  });
  std::printf("consumer: %d\n", answer);
  return answer == 42 ? 0 : 1;
}
