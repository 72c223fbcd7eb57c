// ASan canary: a fiber reads heap memory that another fiber freed while it was switched out.
// ASan must report a heap-use-after-free (the test passes only if it does).

#include <cstdio>

#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

int main() {
  weave::Loop loop;
  int* shared = nullptr;
  volatile int sink = 0;
  auto owner = loop.spawn([&] {
    shared = new int[16]();
    weave::this_fiber::yield();  // the other fiber frees the array meanwhile
    weave::this_fiber::yield();
    sink = shared[3];  // use after free, after two switches
  });
  auto freer = loop.spawn([&] {
    weave::this_fiber::yield();
    delete[] shared;
  });
  loop.run();
  std::printf("canary: finished without a report (sink=%d)\n", sink);
  return 0;
}
