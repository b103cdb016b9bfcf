# lowbit_module(NAME DEPS ...): one static library per folder src/NAME (every *.cc that is not a
# test), and one GoogleTest executable NAME_test with the folder's *_test.cc files. Files are
# globbed so adding a source file needs no CMake edit.
set(LOWBIT_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH "Optional ../shared with reference models")

function(lowbit_module name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  set(dir "${CMAKE_SOURCE_DIR}/src/${name}")
  file(GLOB sources CONFIGURE_DEPENDS "${dir}/*.cc")
  file(GLOB tests CONFIGURE_DEPENDS "${dir}/*_test.cc")
  if(tests)
    list(REMOVE_ITEM sources ${tests})
  endif()
  if(NOT sources)
    # A module with no code yet is an interface library so dependents still link.
    add_library(lowbit_${name} INTERFACE)
    target_include_directories(lowbit_${name} INTERFACE "${CMAKE_SOURCE_DIR}/src")
    target_link_libraries(lowbit_${name} INTERFACE ${ARG_DEPS})
  else()
    add_library(lowbit_${name} STATIC ${sources})
    target_include_directories(lowbit_${name} PUBLIC "${CMAKE_SOURCE_DIR}/src")
    target_link_libraries(lowbit_${name} PUBLIC ${ARG_DEPS})
  endif()
  if(tests)
    add_executable(${name}_test ${tests})
    target_link_libraries(${name}_test PRIVATE lowbit_testing lowbit_${name} GTest::gtest_main)
    add_test(NAME ${name}_test COMMAND ${name}_test)
    set_tests_properties(${name}_test PROPERTIES ENVIRONMENT "LOWBIT_SHARED_DIR=${LOWBIT_SHARED_DIR}")
  endif()
endfunction()

# Header-only test helpers (tests/testing/*.h): temporary directories, ../shared lookup.
add_library(lowbit_testing INTERFACE)
target_include_directories(lowbit_testing INTERFACE "${CMAKE_SOURCE_DIR}/tests" "${CMAKE_SOURCE_DIR}/src")
target_link_libraries(lowbit_testing INTERFACE GTest::gtest)
