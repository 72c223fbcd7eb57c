#pragma once
// std::source_location is not usable with clang 14, which weave supports; the builtins behind
// it are, in both compilers.

namespace weave {

/// Where a fiber suspended: captured by default arguments of every suspending call.
struct SourceLocation {
  const char* file = "";
  const char* function = "";
  unsigned line = 0;

  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          const char* function = __builtin_FUNCTION(),
                                          unsigned line = __builtin_LINE()) noexcept {
    return SourceLocation{file, function, line};
  }
};

}  // namespace weave
