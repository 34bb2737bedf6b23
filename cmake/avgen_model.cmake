# avgen_add_model(NAME MODEL path/to/model.json [SET field=value ...] [FORCE] [NVCC_KERNELS])
#
# At build time runs `avgen emit MODEL -o build-out/NAME` (again whenever the description, an override or
# avgen itself changes) and builds the generated programs NAME-train and NAME-infer from the emitted
# sources with the CPU backend (the runtime library avrt). Targets: NAME-train, NAME-infer; the
# generated folder is ${AVGEN_OUT_DIR}/NAME. NVCC_KERNELS: see avgen_add_emitted.
function(avgen_add_model NAME)
  cmake_parse_arguments(ARG "FORCE;NVCC_KERNELS" "MODEL" "SET" ${ARGN})
  if(NOT ARG_MODEL)
    message(FATAL_ERROR "avgen_add_model(${NAME}): MODEL path/to/model.json is required")
  endif()
  get_filename_component(model "${ARG_MODEL}" ABSOLUTE)
  if(NOT EXISTS "${model}")
    message(FATAL_ERROR "avgen_add_model(${NAME}): ${model} does not exist")
  endif()
  if(NOT AVGEN_OUT_DIR)
    set(AVGEN_OUT_DIR "${CMAKE_BINARY_DIR}/build-out")
  endif()
  set(dir "${AVGEN_OUT_DIR}/${NAME}")
  set(sets "")
  foreach(s IN LISTS ARG_SET)
    list(APPEND sets --set "${s}")
  endforeach()
  if(ARG_FORCE)
    list(APPEND sets --force)
  endif()
  set(outs "${dir}/model.h" "${dir}/model.c" "${dir}/main_train.c" "${dir}/main_infer.c"
           "${dir}/kernels.cu" "${dir}/plan.json" "${dir}/CMakeLists.txt" "${dir}/avgen_graph.h"
           "${dir}/rt_cuda_kernels.cuh" "${dir}/kernels_src.c" "${dir}/kernels_nvcc.cu")
  add_custom_command(
    OUTPUT ${outs}
    # the CPU backend computes in fp32
    COMMAND $<TARGET_FILE:avgen> emit "${model}" -o "${dir}" --set "name=${NAME}" --set precision=fp32 ${sets}
    # emit leaves unchanged files alone; touch them so this rule is not re-run on every build
    COMMAND ${CMAKE_COMMAND} -E touch ${outs}
    DEPENDS avgen "${model}"
    COMMENT "avgen emit ${NAME}"
    VERBATIM)
  if(ARG_NVCC_KERNELS)
    avgen_add_emitted(${NAME} "${dir}" NVCC_KERNELS)
  else()
    avgen_add_emitted(${NAME} "${dir}")
  endif()
endfunction()

# avgen_add_emitted(NAME DIR [NVCC_KERNELS]): the programs NAME-train and NAME-infer from a folder `avgen emit`
# wrote, with the CPU backend's generated step; they run on the CUDA backend too (--backend cuda) when avrt
# has it. NVCC_KERNELS (with the CUDA toolkit): NAME-train carries its own nvcc build of the folder's kernels.cu
# (kernels_nvcc.cu: a fatbin for CMAKE_CUDA_ARCHITECTURES, about 15 s of nvcc an architecture), which
# --kernels nvcc runs instead of the runtime's copy: the fused attention with its own shapes as literals.
function(avgen_add_emitted NAME dir)
  cmake_parse_arguments(ARG "NVCC_KERNELS" "" "" ${ARGN})
  add_library(${NAME}-model STATIC "${dir}/model.c" "${dir}/kernels_src.c")
  target_include_directories(${NAME}-model PUBLIC "${dir}")
  # The generated step calls rt_op, which runs the runtime's reference ops or the CUDA backend.
  target_compile_definitions(${NAME}-model PUBLIC AVGEN_BACKEND_CPU)
  target_link_libraries(${NAME}-model PUBLIC avrt)
  if(ARG_NVCC_KERNELS AND AVGEN_HAVE_CUDA)
    target_sources(${NAME}-model PRIVATE "${dir}/kernels_nvcc.cu")
    target_compile_definitions(${NAME}-model PRIVATE AVGEN_NVCC_KERNELS)
    # as avrt's: no C++ runtime, so the programs link with the C compiler
    target_compile_options(${NAME}-model PRIVATE
                           $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fno-exceptions,-fno-rtti,-fno-threadsafe-statics>
                           $<$<COMPILE_LANGUAGE:CUDA>:${AVGEN_CUDA_KERNEL_FLAGS}>)
  endif()
  add_executable(${NAME}-train "${dir}/main_train.c")
  target_link_libraries(${NAME}-train PRIVATE ${NAME}-model)
  add_executable(${NAME}-infer "${dir}/main_infer.c")
  target_link_libraries(${NAME}-infer PRIVATE ${NAME}-model)
  set_target_properties(${NAME}-train ${NAME}-infer PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${dir}/bin")
endfunction()

# avgen_add_emu(NAME [NVCC_KERNELS]): NAME-train-emu, the program of a model added with avgen_add_model whose
# CUDA backend is the CUDA emulator's build (avrt_emu: runtime/emu), for the tests; nothing without it.
# NVCC_KERNELS: with the program's own build of its kernels (kernels_nvcc.cu, compiled as host C++ for the
# emulator), as avgen_add_emitted's.
# TRACE: also NAME-train-emutrace, on the emulator's tracing build (avrt_emu_trace: memory profile and race
# detector, docs/emulator.md), where the compiler has its instrumentation.
# INFER: also NAME-infer-emu, the inference program (video files classified: --checkpoint) on the emulator.
function(avgen_add_emu NAME)
  cmake_parse_arguments(ARG "NVCC_KERNELS;TRACE;INFER" "" "" ${ARGN})
  if(NOT TARGET avrt_emu)
    return()
  endif()
  if(NOT AVGEN_OUT_DIR)
    set(AVGEN_OUT_DIR "${CMAKE_BINARY_DIR}/build-out")
  endif()
  set(dir "${AVGEN_OUT_DIR}/${NAME}")
  add_executable(${NAME}-train-emu "${dir}/main_train.c" "${dir}/model.c" "${dir}/kernels_src.c")
  target_include_directories(${NAME}-train-emu PRIVATE "${dir}")
  target_compile_definitions(${NAME}-train-emu PRIVATE AVGEN_BACKEND_CPU)
  target_link_libraries(${NAME}-train-emu PRIVATE avrt_emu)
  if(ARG_NVCC_KERNELS)
    target_sources(${NAME}-train-emu PRIVATE "${CMAKE_SOURCE_DIR}/runtime/emu/kernels_nvcc_emu.cc")
    target_include_directories(${NAME}-train-emu PRIVATE "${CMAKE_SOURCE_DIR}/runtime/emu" ${CUDAToolkit_INCLUDE_DIRS})
    target_compile_definitions(${NAME}-train-emu PRIVATE AVGEN_NVCC_KERNELS)
    set_source_files_properties("${CMAKE_SOURCE_DIR}/runtime/emu/kernels_nvcc_emu.cc" TARGET_DIRECTORY ${NAME}-train-emu
                                PROPERTIES COMPILE_OPTIONS "-Wno-unknown-pragmas")
    set_target_properties(${NAME}-train-emu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
  endif()
  set_target_properties(${NAME}-train-emu PROPERTIES LINKER_LANGUAGE CXX RUNTIME_OUTPUT_DIRECTORY "${dir}/bin")
  if(ARG_INFER)
    _avgen_emu_program(${NAME}-infer-emu "${dir}" main_infer.c avrt_emu)
  endif()
  if(ARG_TRACE AND TARGET avrt_emu_trace)
    _avgen_emu_program(${NAME}-train-emutrace "${dir}" main_train.c avrt_emu_trace)
  endif()
endfunction()

# A program of an emitted folder's MAIN (main_train.c, main_infer.c) on one of the emulator's libraries.
function(_avgen_emu_program TARGET dir MAIN LIB)
  add_executable(${TARGET} "${dir}/${MAIN}" "${dir}/model.c" "${dir}/kernels_src.c")
  target_include_directories(${TARGET} PRIVATE "${dir}")
  target_compile_definitions(${TARGET} PRIVATE AVGEN_BACKEND_CPU)
  target_link_libraries(${TARGET} PRIVATE ${LIB})
  set_target_properties(${TARGET} PROPERTIES LINKER_LANGUAGE CXX RUNTIME_OUTPUT_DIRECTORY "${dir}/bin")
endfunction()
