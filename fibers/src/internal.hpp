#pragma once
// Declarations shared by weave's source files; not installed.

#include <string>

namespace weave {
class Loop;
void* eh_globals_of_this_thread() noexcept;
namespace detail {
extern thread_local Loop* tl_running_loop;
class TaskBase;
std::string display_name(const TaskBase* t);
void install_overflow_handler();
// True if `l` is a loop alive on this thread.
bool loop_alive(const Loop* l) noexcept;
}  // namespace detail
}  // namespace weave
