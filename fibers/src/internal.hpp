#pragma once
// Declarations shared by weave's source files; not installed.

#include <string>

namespace weave {
class Loop;
void* eh_globals_of_this_thread() noexcept;
namespace detail {
// The loop running on this thread, if any. Accessors rather than an extern thread_local: GCC's
// UBSan reports a false null store through the cross-TU TLS wrapper.
Loop* running_loop() noexcept;
void set_running_loop(Loop* l) noexcept;
class TaskBase;
std::string display_name(const TaskBase* t);
void install_overflow_handler();
// True if `l` is a loop alive on this thread.
bool loop_alive(const Loop* l) noexcept;
}  // namespace detail
}  // namespace weave
