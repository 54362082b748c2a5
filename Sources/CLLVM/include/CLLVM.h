// The parts of LLVM 19's C API that FlowCodegen uses (Debian: llvm-19-dev).
#include <llvm-c/Core.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm-c/Support.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
