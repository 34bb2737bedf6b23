# fbank.cmake: the tests of runtime/fbank.c, included from tests/CMakeLists.txt (include(fbank.cmake)).
# Needs the avrt library to contain runtime/fbank.c and to link FFTW3 single precision (Debian libfftw3-dev,
# pkg-config module fftw3f) and Threads::Threads. Registers:
#   fbank             unit tests + the committed torchaudio references in tests/fixtures/fbank/ref.safetensors
#                     (regenerate: /usr/bin/python3 tests/reference/fbank_ref.py fixtures tests/fixtures/fbank)
#   fbank-torchaudio  fresh torchaudio references for the recordings in ../shared/media/audio beside the
#                     repository; skipped (exit 77) without torchaudio for AVGEN_FBANK_PYTHON or without the media
if(NOT DEFINED AVGEN_FBANK_PYTHON)
  set(AVGEN_FBANK_PYTHON /usr/bin/python3)   # Debian's python3-torch / python3-torchaudio
endif()
find_package(Threads REQUIRED)
add_executable(test_fbank test_fbank.c)
target_link_libraries(test_fbank PRIVATE avrt Threads::Threads)
target_include_directories(test_fbank PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME fbank COMMAND test_fbank ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/fbank)
add_test(NAME fbank-torchaudio
         COMMAND test_fbank --live ${CMAKE_SOURCE_DIR}/../shared/media
                 ${CMAKE_CURRENT_SOURCE_DIR}/reference/fbank_ref.py ${AVGEN_FBANK_PYTHON})
set_tests_properties(fbank-torchaudio PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
