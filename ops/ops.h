// Every differentiable op of the engine, in one include.
#pragma once
#include "autograd/engine.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/layer_norm.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/normalize.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"
