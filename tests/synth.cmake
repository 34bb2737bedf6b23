# avgen synth (generator/synth.c): the synthetic UCF101-shaped data set generator and its test.
# Included from tests/CMakeLists.txt; needs the FFmpeg libraries found by the top-level CMakeLists.txt.
if(TARGET PkgConfig::FFMPEG)
  add_executable(test_synth ${CMAKE_CURRENT_SOURCE_DIR}/test_synth.c)
  target_include_directories(test_synth PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_synth PRIVATE avgen_core PkgConfig::FFMPEG m)
  add_test(NAME synth COMMAND test_synth)
  set_tests_properties(synth PROPERTIES TIMEOUT 120)
endif()
