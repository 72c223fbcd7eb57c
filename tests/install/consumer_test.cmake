# Builds and runs tests/install/consumer against this build of weave.
#
#   cmake -DMODE=find_package|add_subdirectory -DWEAVE_BUILD_DIR=<weave's build tree>
#         -DWEAVE_SOURCE_DIR=<weave's source tree> -DWORK_DIR=<scratch dir>
#         -DCXX=<compiler> -DBUILD_TYPE=<type> -P consumer_test.cmake
#
# find_package: installs the build tree into WORK_DIR/prefix with `cmake --install`, then
# configures the consumer with CMAKE_PREFIX_PATH=WORK_DIR/prefix.
# add_subdirectory: configures the consumer with WEAVE_SOURCE_DIR, so that it builds weave as
# a subproject.

foreach(var MODE WEAVE_BUILD_DIR WEAVE_SOURCE_DIR WORK_DIR CXX)
  if(NOT ${var})
    message(FATAL_ERROR "consumer_test.cmake: ${var} is not set")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE RelWithDebInfo)
endif()

# ctest may run under make (`make test`): the nested builds must not try to join the outer
# make's jobserver, whose file descriptors they do not have.
unset(ENV{MAKEFLAGS})
unset(ENV{MFLAGS})
unset(ENV{MAKELEVEL})

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# step(<what> <command...>): runs a command, fails the test with its output if it fails.
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}")
  endif()
  message(STATUS "${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(consumer_args -S "${CMAKE_CURRENT_LIST_DIR}/consumer" -B "${WORK_DIR}/build"
  -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
if(MODE STREQUAL "find_package")
  set(prefix "${WORK_DIR}/prefix")
  step("cmake --install" "${CMAKE_COMMAND}" --install "${WEAVE_BUILD_DIR}" --prefix "${prefix}"
    --config "${BUILD_TYPE}")
  foreach(file include/weave/weave.hpp)
    if(NOT EXISTS "${prefix}/${file}")
      message(FATAL_ERROR "the install has no ${file}")
    endif()
  endforeach()
  list(APPEND consumer_args "-DCMAKE_PREFIX_PATH=${prefix}")
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND consumer_args "-DWEAVE_SOURCE_DIR=${WEAVE_SOURCE_DIR}")
else()
  message(FATAL_ERROR "consumer_test.cmake: MODE must be find_package or add_subdirectory")
endif()

step("configure the consumer" "${CMAKE_COMMAND}" ${consumer_args})
step("build the consumer" "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" -j 2)
step("run the consumer" "${WORK_DIR}/build/consumer")
if(NOT step_output MATCHES "consumer: 42\n")
  message(FATAL_ERROR "unexpected output of the consumer:\n${step_output}")
endif()
message(STATUS "${step_output}")
