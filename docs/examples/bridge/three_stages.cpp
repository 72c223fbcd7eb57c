// three_stages: the "callback hell" example of the asyncio talks, in C++, four ways, on one
// legacy callback library (legacy_stages.hpp) that is never changed:
//
//   1. nested callbacks, as the code is before the migration;
//   2. the same three stages as sequential fiber code, through weave::bridge::call;
//   3. the same with a timeout, added in one line (weave::fail_after);
//   4. both styles in one program: callback code calls the fiber version through
//      weave::bridge::submit and gets its result in a callback.
//
// The Python original:
//
//   async def three_stages(request1):
//       response1 = await api_call1(request1)
//       request2 = step1(response1)
//       response2 = await api_call2(request2)
//       request3 = step2(response2)
//       response3 = await api_call3(request3)
//       step3(response3)
//
// docs/migration.md walks through it.
//
// Usage: three_stages [--fast]    (--fast: every delay is ten times shorter; for the tests)

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "legacy_stages.hpp"
#include "weave/bridge.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;

namespace {

void step3(const std::string& response3) { std::printf("  step3: %s\n", response3.c_str()); }

// ---- 1. Before: nested callbacks ------------------------------------------------------------
// Each stage's context is gone by the next one (it must be captured by hand), errors are
// checked in every callback, and api_call1's callback arrives on the library's worker thread,
// so it must hop back to the loop before it may call api_call2.
void three_stages_callbacks(weave::Loop& loop, legacy::Library& lib, std::string request1,
                            std::function<void()> finished) {
  lib.api_call1(request1, [&loop, &lib, finished](std::string response1) {
    // stage 1 (on the worker thread)
    loop.call_soon_threadsafe([&lib, finished, response1] {
      std::string request2 = legacy::step1(response1);
      lib.api_call2(request2, [&lib, finished](std::string response2) {
        // stage 2
        std::string request3 = legacy::step2(response2);
        lib.api_call3(request3, [finished](std::error_code ec, std::string response3) {
          // stage 3
          if (ec)
            std::printf("  error: %s\n", ec.message().c_str());
          else
            step3(response3);
          finished();
        });
      });
    });
  });
}

// ---- 2. After: sequential fiber code through the bridge -----------------------------------------
// The same library calls, one per line. The worker-thread callback is handled by the bridge
// (its wake-up is posted to the loop), and the error code becomes an exception.
std::string three_stages(legacy::Library& lib, const std::string& request1) {
  std::string response1 = weave::bridge::call(&legacy::Library::api_call1, lib, request1);
  // stage 1
  std::string request2 = legacy::step1(response1);
  std::string response2 = weave::bridge::call(&legacy::Library::api_call2, lib, request2);
  // stage 2
  std::string request3 = legacy::step2(response2);
  std::string response3 = weave::bridge::call(&legacy::Library::api_call3, lib, request3);
  // stage 3
  step3(response3);
  return response3;
}

}  // namespace

int main(int argc, char** argv) {
  const int divisor = argc > 1 && std::string_view(argv[1]) == "--fast" ? 10 : 1;
  const auto ms = [divisor](int n) { return std::chrono::milliseconds(n / divisor); };

  weave::Loop loop;
  legacy::Library lib(loop, ms(200), ms(300));

  std::puts("1. nested callbacks:");
  three_stages_callbacks(loop, lib, "request1", [&] { loop.stop(); });
  loop.run_forever();

  std::puts("2. sequential fiber code through weave::bridge::call:");
  std::string r =
      loop.run_until_complete(loop.spawn([&] { return three_stages(lib, "request1"); }));
  std::printf("  three_stages returned %s\n", r.c_str());

  std::puts("3. the same with a timeout, in one line:");
  legacy::Library slow_lib(loop, ms(200), ms(5000));  // api_call3 now takes 5 s
  auto with_timeout = loop.spawn([&] {
    try {
      weave::fail_after(ms(1000), [&] { return three_stages(slow_lib, "request1"); });
    } catch (const weave::TimeoutError& e) {
      std::printf("  three_stages gave up after the timeout: %s\n", e.what());
    }
  });
  loop.run_until_complete(with_timeout);

  std::puts("4. callback code calling the fiber version (both styles in one program):");
  weave::bridge::submit(
      loop, [&] { return three_stages(lib, "request1"); },
      [&](std::exception_ptr error, std::string response3) {
        std::printf("  the callback got %s\n", error ? "an error" : response3.c_str());
        loop.stop();
      });
  loop.run_forever();
  return 0;
}
