# Registers one ctest test per tests/test_*.cpp file, so that `ctest` reports each suite
# separately; each runs the single doctest binary filtered to that source file.
#
# LIBRAMIL_TEST_SUITES (a ;-list of suite names, e.g. "test_data;test_gemm"; empty = all)
# builds only those suites into libramil_tests and registers only them. tools/ci_sanitize.sh
# uses it so that the ASan build does not compile the suites it does not run.
#
# A LIBRAMIL_CORE_ONLY build (CMakeLists.txt) has no data/ or models/ layer and no libramil
# binary: its default is the suites that need only lm_ops, LM_CORE_SUITES below (a suite added
# here must include nothing from data/ or models/ and must not run the binary).
set(LIBRAMIL_TEST_SUITES "" CACHE STRING "Test suites (tests/<name>.cpp) to build and register; empty = all")
set(LM_CORE_SUITES test_op_table test_autograd test_attention_pool test_gemm test_gemm_skinny test_conv test_resize test_nn_ops test_sinkhorn_kernels test_block_cache)
if(LIBRAMIL_CORE_ONLY AND NOT LIBRAMIL_TEST_SUITES)
  set(LIBRAMIL_TEST_SUITES ${LM_CORE_SUITES})
endif()
file(GLOB _lm_test_files CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.cpp)
if(LIBRAMIL_TEST_SUITES)
  set(_lm_selected "")
  foreach(_name ${LIBRAMIL_TEST_SUITES})
    if(NOT EXISTS ${CMAKE_SOURCE_DIR}/tests/${_name}.cpp)
      message(FATAL_ERROR "LIBRAMIL_TEST_SUITES: no suite tests/${_name}.cpp")
    endif()
    list(APPEND _lm_selected ${CMAKE_SOURCE_DIR}/tests/${_name}.cpp)
  endforeach()
  set(_lm_test_files ${_lm_selected})
  # Every file that is not a suite (main.cpp, shared cases such as op_table_cases.cpp) stays.
  file(GLOB _lm_test_support CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/*.cpp)
  list(FILTER _lm_test_support EXCLUDE REGEX "/test_[^/]*\\.cpp$")
  set_property(TARGET libramil_tests PROPERTY SOURCES ${_lm_test_support} ${_lm_test_files})
  message(STATUS "libramil: test suites ${LIBRAMIL_TEST_SUITES}")
endif()
foreach(_f ${_lm_test_files})
  get_filename_component(_name ${_f} NAME_WE)
  add_test(NAME ${_name} COMMAND libramil_tests --source-file=*${_name}.cpp --no-intro)
  set_tests_properties(${_name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1500)
endforeach()
