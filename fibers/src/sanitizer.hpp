#pragma once
// Sanitizer hooks for the switch code. In ordinary builds every hook compiles to nothing.

#include <cstddef>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define WEAVE_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#define WEAVE_NO_ASAN __attribute__((no_sanitize_address))
#else
#define WEAVE_ASAN 0
#define WEAVE_NO_ASAN
#endif

#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define WEAVE_TSAN 1
#include <sanitizer/tsan_interface.h>
#else
#define WEAVE_TSAN 0
#endif

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEAVE_VALGRIND 1
#else
#define WEAVE_VALGRIND 0
#endif
