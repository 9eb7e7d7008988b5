# Registers one ctest test per tests/test_*.cpp file, so that `ctest` reports each suite
# separately; each runs the single doctest binary filtered to that source file.
file(GLOB _lm_test_files CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.cpp)
foreach(_f ${_lm_test_files})
  get_filename_component(_name ${_f} NAME_WE)
  add_test(NAME ${_name} COMMAND libramil_tests --source-file=*${_name}.cpp --no-intro)
  set_tests_properties(${_name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1500)
endforeach()
