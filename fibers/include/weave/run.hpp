#pragma once
// weave::run: the program's entry point into weave (asyncio.run).

#include <type_traits>
#include <utility>

#include "weave/loop.hpp"

namespace weave {

/// Creates a loop, runs `fn(args...)` in a fiber on it until it returns, then cancels every
/// task still alive, lets them finish, closes the loop and returns fn's result (or rethrows
/// its exception).
///
/// @par Example
/// @code
/// int main() {
///   return weave::run([] {
///     weave::this_fiber::sleep_for(std::chrono::seconds(1));
///     return 0;
///   });
/// }
/// @endcode
template <class F, class... Args>
decltype(auto) run(Loop::Options options, F&& fn, Args&&... args) {
  Loop loop(std::move(options));
  auto main =
      loop.spawn(SpawnOptions{.name = "main"}, std::forward<F>(fn), std::forward<Args>(args)...);
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  if constexpr (std::is_void_v<R>) {
    loop.run_until_complete(main);
    loop.close();
  } else {
    R result = std::move(loop.run_until_complete(main));
    loop.close();
    return result;
  }
}

template <class F, class... Args>
requires(!std::is_same_v<std::decay_t<F>, Loop::Options>) decltype(auto)
    run(F&& fn, Args&&... args) {
  return run(Loop::Options{}, std::forward<F>(fn), std::forward<Args>(args)...);
}

}  // namespace weave
