# Checks that the first ```cpp block of README.md is readme_example.cpp from its first
# #include on, so that the README shows code that the tests compile and run.
#
#   cmake -DREADME=<README.md> -DSOURCE=<readme_example.cpp> -P check_readme.cmake

file(READ "${README}" readme)
file(READ "${SOURCE}" source)

string(FIND "${readme}" "```cpp\n" begin)
if(begin EQUAL -1)
  message(FATAL_ERROR "${README} has no ```cpp block")
endif()
math(EXPR begin "${begin} + 7")
string(SUBSTRING "${readme}" ${begin} -1 readme)
string(FIND "${readme}" "```" end)
string(SUBSTRING "${readme}" 0 ${end} shown)

string(FIND "${source}" "\n#include" first_include)
math(EXPR first_include "${first_include} + 1")
string(SUBSTRING "${source}" ${first_include} -1 code)

if(NOT shown STREQUAL code)
  message(FATAL_ERROR "The example in ${README} differs from ${SOURCE} (from its first "
    "#include on). Copy the file's code into the README.\nREADME:\n${shown}\nsource:\n${code}")
endif()
