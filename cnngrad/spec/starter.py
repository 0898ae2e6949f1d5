"""The commented starter spec ``cnngrad init`` writes: a small network that ``cnngrad check`` passes."""

STARTER = """\
# A cnngrad spec: one example through a small CNN. Try:
#   cnngrad forward  THIS_FILE      every layer's output
#   cnngrad backward THIS_FILE      ∂E/∂ every layer's output and parameter
#   cnngrad check    THIS_FILE      gradients against finite differences, and expect: below
#   cnngrad explain  THIS_FILE 'grad.conv1.kernel[0,1]'   one entry's chain-rule sum
# Editors: `cnngrad schema > cnngrad.schema.json` and a first line
#   # yaml-language-server: $schema=cnngrad.schema.json
name: starter — conv, ReLU, max pooling, FC, softmax, cross-entropy

input:                        # 2-D (H, W), 3-D (C, H, W), or a 1-D vector for fc-only networks
                              # (N examples stacked along a first axis with a key `batch: N`)
  - [0.1, 0.5, 0.2, 0.8, 0.3]
  - [0.7, 0.4, 0.9, 0.1, 0.6]
  - [0.3, 0.8, 0.2, 0.5, 0.4]
  - [0.6, 0.1, 0.7, 0.3, 0.9]
  - [0.2, 0.9, 0.4, 0.8, 0.5]

layers:                       # applied in order; named by kind and count: conv1, relu1, pool1, ...
  - conv:
      kernel: [[0.5, -0.3], [0.2, 0.4]]   # 2-D: one filter; (C, kh, kw) or (D, C, kh, kw) for more
      bias: -0.1
      stride: 1
      padding: 0              # int, [ph, pw], [[top, bottom], [left, right]], valid or same
      mode: cross_correlation # or convolution (the kernel rotated 180°); groups: G for grouped/depthwise
  - relu                      # also leaky_relu: {slope: 0.01}, sigmoid, tanh, softmax, layer_norm,
                              # group_norm: {groups: G}, conv_transpose: {kernel: ...}, global_avg_pool
                              # (softmax: {axis: channels} normalises each pixel's channels),
                              # batch_norm: {gamma: ..., beta: ..., eps: 1e-5} (with batch: N)
  - pool: {type: max, size: 2, stride: 2}   # max | avg | l2; ties: first | split; ceil_mode: false;
                              # dilation: 1 (max); count_include_pad: true (avg, PyTorch's default)
  - flatten                   # (dropout: {p: 0.5, seed: 0} or {p: 0.5, mask: [...]} goes anywhere)
  - fc:                       # weights are (outputs, inputs): y = W a + b
      weights: [[0.3, -0.2, 0.5, 0.1], [-0.4, 0.6, 0.2, -0.3]]
      bias: [0.1, -0.1]
  - softmax                   # cross_entropy reads a distribution: keep softmax last
                              # branches: any layer may read an earlier one with `from: NAME`
                              # (or input); add: {inputs: [conv2, input]} (a residual connection)
                              # and concat: {inputs: [a, b]} (along channels) join named values

loss: cross_entropy           # squared_error | mse | cross_entropy | binary_cross_entropy | none
                              # (binary_cross_entropy after a final sigmoid). Ending in raw scores,
                              # as in PyTorch? write  loss: {cross_entropy: {from: logits}}
                              # or the hinge: multiclass_svm ({multiclass_svm: {margin: 1}} sets Δ)
                              # averaged over a batch: {cross_entropy: {reduction: mean}}
target: 1                     # a class index (or a vector like [0, 1]); loss none takes upstream_grad
                              # (forward runs without loss and target; backward and check need them)
# regularization: {l2: 0.0005, params: [conv1.kernel, fc1.weights]}   # adds λ Σ θ² to the loss

expect:                       # numbers worked by hand, verified by `cnngrad check`
  tolerance: auto             # each number to half a unit of its last written decimal
  pool1: [[0.53, 0.56], [0.57, 0.56]]
  loss: 0.98531927
  grad.conv1.kernel[0,0]: 0.05640120
"""
