//! Dense layers whose sizes are known only at run time (dfdx 0.13's `Linear<I, O>` is
//! compile-time sized), a parameter visitor, Adam over it (dfdx's own Adam kernel), and
//! safetensors save/load.
//!
//! dfdx's `TensorCollection` cannot describe run-time shaped tensors (its `TensorOptions`
//! constructors need `ConstShape`), so the model lists its own parameters through
//! [`Params`], and [`Adam`] drives dfdx's `AdamConfig::try_update` on each of them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use dfdx::prelude::*;
use dfdx::tensor::Gradients;
use rand::{rngs::SmallRng, rngs::StdRng, Rng, SeedableRng};

/// The device every tensor lives on: the CPU.
pub type Dev = Cpu;
/// A run-time sized matrix, optionally carrying a gradient tape.
pub type Mat<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;
/// A run-time sized vector, optionally carrying a gradient tape.
pub type Vector<T = NoneTape> = Tensor<(usize,), f32, Dev, T>;

/// `y = x·W + b` with `W` stored `inputs × outputs` (no transpose in the forward pass).
#[derive(Debug, Clone)]
pub struct Dense {
    pub weight: Mat,
    pub bias: Vector,
}

impl Dense {
    /// PyTorch-style initialisation: both `W` and `b` uniform in ±1/√inputs.
    pub fn new(dev: &Dev, inputs: usize, outputs: usize, rng: &mut StdRng) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw = |len: usize| {
            (0..len)
                .map(|_| rng.gen_range(-bound..bound))
                .collect::<Vec<f32>>()
        };
        Self {
            weight: dev.tensor_from_vec(draw(inputs * outputs), (inputs, outputs)),
            bias: dev.tensor_from_vec(draw(outputs), (outputs,)),
        }
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.bias.shape().0
    }

    /// Applies the layer; the tape rides on `x` and records `W` and `b` too.
    pub fn forward<T: Tape<f32, Dev>>(&self, x: Mat<T>) -> Mat<T> {
        bias_activation(x.matmul(self.weight.retaped::<T>()), &self.bias, None)
    }

    /// `activation(x·W + b)`, the bias and the activation in one pass.
    pub fn forward_activated<T: Tape<f32, Dev>>(
        &self,
        x: Mat<T>,
        activation: Activation,
    ) -> Mat<T> {
        bias_activation(
            x.matmul(self.weight.retaped::<T>()),
            &self.bias,
            Some(activation),
        )
    }
}

/// Dropout drawn inside a layer's pass: each output is zeroed with probability `prob`,
/// the others scaled by 1 / (1 − prob); the same seed gives the same mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    pub prob: f64,
    pub seed: u64,
}

impl Dropout {
    /// `prob` with a seed drawn from `dev` (so a seeded device gives a reproducible run).
    pub fn drawn(dev: &Dev, prob: f64) -> Self {
        Self {
            prob,
            seed: dev.random_u64(),
        }
    }

    /// The factor of each of `len` outputs: 0 where dropped, 1 / (1 − prob) where kept.
    pub(super) fn scales(self, len: usize) -> Vec<f32> {
        // One 16-bit draw per output (p resolved to 1/65,536), drawn in bulk so that the
        // comparison below vectorises.
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let threshold = (self.prob.clamp(0.0, 1.0) * 65_536.0).round().min(65_536.0) as u32;
        let kept = (1.0 / (1.0 - self.prob)) as f32;
        let mut draws = vec![0u16; len];
        rng.fill(&mut draws[..]);
        let threshold = threshold.min(u32::from(u16::MAX) + 1);
        draws
            .iter()
            .map(|&d| if u32::from(d) >= threshold { kept } else { 0.0 })
            .collect()
    }
}

/// One layer's forward values, kept for its backward pass.
pub(super) struct LayerValues {
    /// The output, rows × outputs, row-major.
    pub out: Vec<f32>,
    /// What the backward pass multiplies the output's gradient by: the activation's
    /// derivative times the dropout mask; empty when that is 1 or no backward pass follows.
    pub derivative: Vec<f32>,
}

/// `dropout(activation(Σᵢ xᵢ·Wᵢ + b))` on plain values, each xᵢ `rows × kᵢ` and Wᵢ
/// `kᵢ × outputs` (row-major): a layer whose input comes in column blocks (D's joint layer
/// over its two branches) multiplies each block by its rows of W instead of concatenating.
/// `with_derivative`: keep what the backward pass needs (see [`LayerValues::derivative`]).
pub(super) fn layer_values(
    products: &[(&[f32], &[f32])],
    bias: &[f32],
    activation: Option<Activation>,
    dropout: Option<Dropout>,
    with_derivative: bool,
) -> LayerValues {
    let outputs = bias.len();
    let rows = products.first().map_or(0, |(x, w)| {
        let k = w.len() / outputs.max(1);
        x.len() / k.max(1)
    });
    let mut y = vec![0f32; rows * outputs];
    for (i, (x, w)) in products.iter().enumerate() {
        let k = w.len() / outputs.max(1);
        matmul_into(&mut y, i > 0, View::rows(x, k), View::rows(w, outputs));
    }
    let keep = dropout.map(|d| d.scales(y.len()));
    let needs_derivative = with_derivative && (activation.is_some() || keep.is_some());
    let mut derivative = vec![1f32; if needs_derivative { y.len() } else { 0 }];
    for (r, row) in y.chunks_exact_mut(outputs.max(1)).enumerate() {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        let span = r * outputs..(r + 1) * outputs;
        if let Some(act) = activation {
            row.iter_mut().for_each(|v| *v = act.value(*v));
            if needs_derivative {
                derivative[span.clone()]
                    .iter_mut()
                    .zip(row.iter())
                    .for_each(|(d, &v)| *d = act.derivative(v));
            }
        }
        if let Some(keep) = &keep {
            let k = &keep[span.clone()];
            row.iter_mut().zip(k).for_each(|(v, k)| *v *= k);
            if needs_derivative {
                derivative[span]
                    .iter_mut()
                    .zip(k)
                    .for_each(|(d, k)| *d *= k);
            }
        }
    }
    LayerValues { out: y, derivative }
}

/// `g ⊙= derivative`: an output's gradient taken back through the activation and the
/// dropout mask (an empty `derivative` is the identity).
pub(super) fn times(g: &mut [f32], derivative: &[f32]) {
    if !derivative.is_empty() {
        g.iter_mut().zip(derivative).for_each(|(g, d)| *g *= d);
    }
}

/// `into_w += xᵀ·g`: the weight gradient of a layer with input `x` (rows × k) whose
/// pre-activation has the gradient `g` (rows × outputs).
pub(super) fn add_weight_grad(into_w: &mut [f32], x: &[f32], g: &[f32], outputs: usize) {
    let k = into_w.len() / outputs.max(1);
    matmul_into(into_w, true, View::rows(x, k).t(), View::rows(g, outputs));
}

/// `into_b += Σ_rows g`: the bias gradient.
pub(super) fn add_bias_grad(into_b: &mut [f32], g: &[f32]) {
    for row in g.chunks_exact(into_b.len().max(1)) {
        add_into(into_b, row);
    }
}

/// `into_x += g·Wᵀ`: the gradient of a layer's input, for the layers before it.
pub(super) fn add_input_grad(into_x: &mut [f32], g: &[f32], w: &[f32], outputs: usize) {
    matmul_into(
        into_x,
        true,
        View::rows(g, outputs),
        View::rows(w, outputs).t(),
    );
}

/// A row-major matrix borrowed as a slice, possibly read transposed.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> View<'a> {
    /// `data` as rows of `cols` values.
    fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rows: data.len() / cols.max(1),
            cols,
            transposed: false,
        }
    }

    /// The same matrix read transposed.
    fn t(self) -> Self {
        Self {
            transposed: !self.transposed,
            ..self
        }
    }

    /// (rows, cols) as read, and the strides (row, column) of that reading.
    fn shape_strides(&self) -> ((usize, usize), (isize, isize)) {
        let c = self.cols as isize;
        if self.transposed {
            ((self.cols, self.rows), (1, c))
        } else {
            ((self.rows, self.cols), (c, 1))
        }
    }
}

/// `dst = a·b`, or `dst += a·b` when `accumulate`, with `dst` row-major: gemm, the kernel
/// dfdx's own products use, called directly so gradients accumulate in place.
fn matmul_into(dst: &mut [f32], accumulate: bool, a: View<'_>, b: View<'_>) {
    let ((m, k), (a_rs, a_cs)) = a.shape_strides();
    let ((k2, n), (b_rs, b_cs)) = b.shape_strides();
    assert!(
        k == k2 && dst.len() == m * n && a.data.len() == m * k && b.data.len() == k * n,
        "matmul_into: shapes {m}×{k} · {k2}×{n} into {}",
        dst.len()
    );
    // SAFETY: the three slices hold exactly the elements the shapes and strides address
    // (checked above), `dst` is borrowed mutably and so aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        )
    }
}

/// The elements of a contiguous matrix (every tensor a layer sees), copied as they lie in
/// memory: dfdx's `as_vec` walks them one index at a time.
pub(super) fn values(t: &Mat) -> Vec<f32> {
    let mut out = vec![0f32; t.shape().0 * t.shape().1];
    t.copy_into(&mut out);
    out
}

/// `into += values`, element by element.
fn add_into(into: &mut [f32], values: &[f32]) {
    into.iter_mut().zip(values).for_each(|(s, v)| *s += v);
}

/// The non-linearity between two dense layers: DAGMM's networks use tanh (as the paper),
/// EGBAD's the authors' ReLU and leaky ReLU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Tanh,
    Relu,
    /// Leaky ReLU with this slope below zero.
    Leaky(f32),
}

impl Activation {
    /// The activation of `x`.
    #[inline(always)]
    fn value(self, x: f32) -> f32 {
        match self {
            Activation::Tanh => tanh_f32(x),
            Activation::Relu => x.max(0.0),
            Activation::Leaky(slope) => {
                if x > 0.0 {
                    x
                } else {
                    slope * x
                }
            }
        }
    }

    /// Its derivative, from the activation's output `y`.
    #[inline(always)]
    fn derivative(self, y: f32) -> f32 {
        match self {
            Activation::Tanh => 1.0 - y * y,
            Activation::Relu => f32::from(u8::from(y > 0.0)),
            Activation::Leaky(slope) => {
                if y > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
        }
    }
}

/// `activation(a + b)` with `b` added to every row of `a` (`None`: no activation), as one
/// dfdx operation of our own. dfdx's broadcast add, its reduction for the bias gradient
/// and its `tanh` (libm's scalar `tanhf`, a third of a DAGMM step) were most of a training
/// step's time outside the matrix products; this is one vectorisable pass forward and one
/// backward.
pub fn bias_activation<T: Tape<f32, Dev>>(
    a: Mat<T>,
    bias: &Vector,
    activation: Option<Activation>,
) -> Mat<T> {
    let shape = *a.shape();
    let cols = shape.1;
    let (a, mut tape) = a.split_tape();
    let mut y = vec![0f32; shape.0 * cols];
    a.copy_into(&mut y);
    let b = bias.as_vec();
    for row in y.chunks_exact_mut(cols) {
        for (v, b) in row.iter_mut().zip(&b) {
            *v += b;
        }
    }
    if let Some(act) = activation {
        y.iter_mut().for_each(|v| *v = act.value(*v));
    }
    let derivative: Option<Vec<f32>> = activation
        .filter(|_| T::OWNS_TAPE)
        .map(|act| y.iter().map(|&v| act.derivative(v)).collect());
    let out: Mat = a.device().tensor_from_vec(y, shape);
    if T::OWNS_TAPE {
        let (a_id, b_id, out_id) = (a.ghost(), bias.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&out_id)?;
            let mut upstream = vec![0f32; shape.0 * cols];
            grads.get(&out_id).copy_into(&mut upstream);
            if let Some(d) = &derivative {
                upstream.iter_mut().zip(d).for_each(|(g, d)| *g *= d);
            }
            let into_a = grads.get_or_alloc_mut(&a_id)?;
            into_a.iter_mut().zip(&upstream).for_each(|(g, u)| *g += u);
            let into_b = grads.get_or_alloc_mut(&b_id)?;
            for row in upstream.chunks_exact(cols) {
                into_b.iter_mut().zip(row).for_each(|(g, u)| *g += u);
            }
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// `tanh(x)` within a few ulp: an odd degree-13 over even degree-6 rational minimax
/// approximation on [−7.9, 7.9] (beyond it tanh is ±1 in f32), branch-free so loops
/// over it vectorise.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = -2.760_768_5e-16_f32;
    let p = p * x2 + 2.000_188e-13;
    let p = p * x2 + -8.604_672e-11;
    let p = p * x2 + 5.122_297e-8;
    let p = p * x2 + 1.485_722_4e-5;
    let p = p * x2 + 6.372_619_3e-4;
    let p = p * x2 + 4.893_524_6e-3;
    let q = 1.198_258_4e-6_f32;
    let q = q * x2 + 1.185_347_1e-4;
    let q = q * x2 + 2.268_434_6e-3;
    let q = q * x2 + 4.893_525e-3;
    x * p / q
}

/// A stack of dense layers with an activation between them (none after the last).
#[derive(Debug, Clone)]
pub struct Mlp {
    pub layers: Vec<Dense>,
    pub activation: Activation,
}

impl Mlp {
    /// Layers `widths[0] → widths[1] → … → widths[last]` with tanh between them.
    pub fn new(dev: &Dev, widths: &[usize], rng: &mut StdRng) -> Self {
        Self::with_activation(dev, widths, Activation::Tanh, rng)
    }

    /// Layers `widths[0] → … → widths[last]` with `activation` between them.
    pub fn with_activation(
        dev: &Dev,
        widths: &[usize],
        activation: Activation,
        rng: &mut StdRng,
    ) -> Self {
        Self {
            layers: widths
                .windows(2)
                .map(|w| Dense::new(dev, w[0], w[1], rng))
                .collect(),
            activation,
        }
    }

    /// Forward pass of rows of data, which need no gradient, as one operation on plain
    /// values: the tape `T` records the layers' weights and biases only (tracing `x` would
    /// make dfdx compute ∂/∂x, a product as large as the first layer's, that nobody reads),
    /// and no layer's output is copied into a dfdx tensor and out again.
    pub fn forward_data<T: Tape<f32, Dev>>(&self, x: &Mat) -> Mat<T> {
        self.fused_forward(x, T::default(), None)
    }

    /// [`forward_data`](Self::forward_data) of some `rows` of an input that needs its
    /// gradient too (EGBAD's G(E(x)) on the rows its cycle term reads): `x`'s tape goes on,
    /// and the backward pass adds ∂/∂x to those rows of `x`'s gradient.
    pub fn forward_traced<T: Tape<f32, Dev>>(&self, x: Mat<T>, rows: &[usize]) -> Mat<T> {
        let (x, tape) = x.split_tape();
        self.fused_forward(&x, tape, Some(rows.to_vec()))
    }

    /// The layers as one operation recorded on `tape`, on every row of `x` or, when
    /// `traced_rows` is given, on those rows, whose gradient the backward pass then also adds
    /// to what the tape has for `x` (by its id).
    fn fused_forward<T: Tape<f32, Dev>>(
        &self,
        x: &Mat,
        mut tape: T,
        traced_rows: Option<Vec<usize>>,
    ) -> Mat<T> {
        let last = self.layers.len() - 1;
        let weights: Vec<Vec<f32>> = self.layers.iter().map(|l| values(&l.weight)).collect();
        let width = x.shape().1;
        let all = values(x);
        let mut inputs = vec![match &traced_rows {
            None => all,
            Some(rows) => (rows.iter())
                .flat_map(|&r| all[r * width..(r + 1) * width].iter().copied())
                .collect(),
        }];
        let mut passes: Vec<LayerValues> = Vec::with_capacity(self.layers.len());
        for (i, (layer, w)) in self.layers.iter().zip(&weights).enumerate() {
            let activation = (i < last).then_some(self.activation);
            let input = inputs
                .last()
                .expect("the data, then each hidden layer's output");
            let mut pass = layer_values(
                &[(input, w)],
                &layer.bias.as_vec(),
                activation,
                None,
                T::OWNS_TAPE,
            );
            if i < last {
                inputs.push(std::mem::take(&mut pass.out));
            }
            passes.push(pass);
        }
        let out = std::mem::take(&mut passes[last].out);
        let rows = traced_rows.as_ref().map_or(x.shape().0, Vec::len);
        let outputs = self.layers[last].outputs();
        let out: Mat = x.device().tensor_from_vec(out, (rows, outputs));
        if T::OWNS_TAPE {
            let ids: Vec<_> = (self.layers.iter())
                .map(|l| (l.weight.ghost(), l.bias.ghost(), l.outputs()))
                .collect();
            let out_id = out.ghost();
            let input = traced_rows.map(|rows| (x.ghost(), rows));
            tape.add_backward_op(move |grads| {
                // The output's gradient is read by this operation only (it made the output).
                let mut g: Vec<f32> = std::mem::take(grads.get_or_alloc_mut(&out_id)?);
                for (i, (w_id, b_id, outputs)) in ids.iter().enumerate().rev() {
                    times(&mut g, &passes[i].derivative);
                    add_weight_grad(grads.get_or_alloc_mut(w_id)?, &inputs[i], &g, *outputs);
                    add_bias_grad(grads.get_or_alloc_mut(b_id)?, &g);
                    if i > 0 {
                        let mut below = vec![0f32; inputs[i].len()];
                        add_input_grad(&mut below, &g, &weights[i], *outputs);
                        g = below;
                    } else if let Some((x_id, rows)) = &input {
                        let mut below = vec![0f32; inputs[0].len()];
                        add_input_grad(&mut below, &g, &weights[0], *outputs);
                        let into_x = grads.get_or_alloc_mut(x_id)?;
                        for (&r, row) in rows.iter().zip(below.chunks_exact(width)) {
                            add_into(&mut into_x[r * width..(r + 1) * width], row);
                        }
                    }
                }
                Ok(())
            });
        }
        out.put_tape(tape)
    }

    /// Forward pass; `dropout_after_hidden` applies dropout (training only) after each hidden activation.
    pub fn forward<T: Tape<f32, Dev>>(
        &self,
        mut x: Mat<T>,
        dropout_after_hidden: Option<f64>,
    ) -> Mat<T> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if i < last {
                x = layer.forward_activated(x, self.activation);
                if let Some(p) = dropout_after_hidden {
                    x = x.dropout(p);
                }
            } else {
                x = layer.forward(x);
            }
        }
        x
    }
}

/// Mutable access to one parameter tensor of either shape.
pub enum ParamMut<'a> {
    Matrix(&'a mut Mat),
    Vector(&'a mut Vector),
}

/// Anything with named parameters: lets one optimiser and one saver serve every network.
pub trait Params {
    /// Calls `f` with every parameter and a stable, dotted name.
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>));
}

impl Params for Dense {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        f(
            format!("{prefix}.weight"),
            ParamMut::Matrix(&mut self.weight),
        );
        f(format!("{prefix}.bias"), ParamMut::Vector(&mut self.bias));
    }
}

impl Params for Mlp {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.visit_params(&format!("{prefix}.{i}"), f);
        }
    }
}

/// Adam (dfdx's kernel) with moments kept per parameter tensor.
#[derive(Clone)]
pub struct Adam {
    pub config: AdamConfig,
    step: i32,
    first_moment: Gradients<f32, Dev>,
    second_moment: Gradients<f32, Dev>,
}

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's default betas and epsilon.
    pub fn new(lr: f64) -> Self {
        Self {
            config: AdamConfig {
                lr,
                ..Default::default()
            },
            step: 0,
            first_moment: Gradients::leaky(),
            second_moment: Gradients::leaky(),
        }
    }

    /// One update of every parameter of `model` from `grads` (a parameter with no gradient
    /// entry gets a zero gradient). Returns `false`, having changed nothing (weights, moments
    /// or step count), when a gradient is not [`safe`](safe_gradient): so a refused step
    /// needs no copy of the network to roll back to, and an applied one leaves every weight
    /// and moment finite.
    pub fn update(
        &mut self,
        model: &mut impl Params,
        grads: &mut Gradients<f32, Dev>,
    ) -> Result<bool> {
        let mut safe = true;
        let mut failure = None;
        model.visit_params("", &mut |name, param| {
            let result = match param {
                ParamMut::Matrix(t) => grads.get_or_alloc_mut(&*t).map(|g| safe_gradient(g)),
                ParamMut::Vector(t) => grads.get_or_alloc_mut(&*t).map(|g| safe_gradient(g)),
            };
            match result {
                Ok(ok) => safe &= ok,
                Err(e) => {
                    failure.get_or_insert(anyhow!("reading the gradient of {name}: {e:?}"));
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if !safe {
            return Ok(false);
        }
        self.step += 1;
        let (step, config) = (self.step, self.config);
        let (m1, m2) = (&mut self.first_moment, &mut self.second_moment);
        model.visit_params("", &mut |name, param| {
            let result = match param {
                ParamMut::Matrix(t) => update_one(&config, step, t, m1, m2, grads),
                ParamMut::Vector(t) => update_one(&config, step, t, m1, m2, grads),
            };
            if let Err(e) = result {
                failure.get_or_insert(anyhow!("Adam update of {name}: {e:?}"));
            }
        });
        failure.map_or(Ok(true), Err)
    }
}

/// Gradients at or above this size are refused: below it, a gradient's square (which Adam's
/// second moment averages) stays far below `f32::MAX`, so finite weights and moments stay
/// finite (the update's size is bounded by the learning rate times m̂ / (√v̂ + ε)).
const LARGEST_SAFE_GRADIENT: f32 = 1e18;

/// `true` when every value is finite and below [`LARGEST_SAFE_GRADIENT`] in size.
fn safe_gradient(values: &[f32]) -> bool {
    // An `and` over every value, unlike `all` (which stops early), vectorises; NaN fails
    // the comparison, so it counts as unsafe.
    values
        .iter()
        .fold(true, |safe, x| safe & (x.abs() < LARGEST_SAFE_GRADIENT))
}

fn update_one<S: Shape>(
    config: &AdamConfig,
    step: i32,
    param: &mut Tensor<S, f32, Dev>,
    m1: &mut Gradients<f32, Dev>,
    m2: &mut Gradients<f32, Dev>,
    grads: &mut Gradients<f32, Dev>,
) -> Result<(), <Dev as HasErr>::Err> {
    let grad = grads.get_or_alloc_mut(&*param)?;
    let first = m1.get_or_alloc_mut(&*param)?;
    let second = m2.get_or_alloc_mut(&*param)?;
    config.try_update(step, param, first, second, grad)
}

/// Every parameter's values by name (row-major), with its dimensions.
pub fn snapshot(model: &mut impl Params) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    model.visit_params("", &mut |name, param| {
        let (dims, values) = match param {
            ParamMut::Matrix(t) => (vec![t.shape().0, t.shape().1], t.as_vec()),
            ParamMut::Vector(t) => (vec![t.shape().0], t.as_vec()),
        };
        out.push((name.trim_start_matches('.').to_string(), dims, values));
    });
    out
}

/// All parameters in the safetensors format (the caller writes and fingerprints them).
pub fn safetensors_bytes(model: &mut impl Params) -> Result<Vec<u8>> {
    let tensors = snapshot(model);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, dims, values)| {
            (
                name,
                dims,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(name, dims, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| anyhow!("tensor {name}: {e:?}"))
        })
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(views, &None).map_err(|e| anyhow!("serialising weights: {e:?}"))
}

/// Loads parameters from the safetensors `bytes` read from `path` into `model`, checking
/// every name and shape (the caller has already read the file, to check its fingerprint).
pub fn load_safetensors(model: &mut impl Params, bytes: &[u8], path: &Path) -> Result<()> {
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        anyhow!(
            "{} is truncated or damaged (not a valid safetensors file: {e:?})",
            path.display()
        )
    })?;
    let mut loaded: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            bail!("{}: tensor {name} is not f32", path.display());
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        loaded.insert(name, (view.shape().to_vec(), values));
    }
    let mut failure = None;
    model.visit_params("", &mut |name, param| {
        let name = name.trim_start_matches('.').to_string();
        let Some((dims, values)) = loaded.get(&name) else {
            failure.get_or_insert(anyhow!("{}: missing tensor {name}", path.display()));
            return;
        };
        let expected = match &param {
            ParamMut::Matrix(t) => vec![t.shape().0, t.shape().1],
            ParamMut::Vector(t) => vec![t.shape().0],
        };
        if values.iter().any(|v| !v.is_finite()) {
            failure.get_or_insert(anyhow!(
                "{}: tensor {name} holds values that are not finite",
                path.display()
            ));
            return;
        }
        if &expected != dims {
            failure.get_or_insert(anyhow!(
                "{}: tensor {name} has shape {dims:?}, the model needs {expected:?}",
                path.display()
            ));
            return;
        }
        match param {
            ParamMut::Matrix(t) => t.copy_from(values),
            ParamMut::Vector(t) => t.copy_from(values),
        }
    });
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tanh_tests {
    use super::*;

    #[test]
    fn tanh_f32_matches_the_exact_tanh_everywhere() {
        let mut worst = 0f64;
        let mut x = -12.0f32;
        while x <= 12.0 {
            let exact = (x as f64).tanh();
            worst = worst.max((tanh_f32(x) as f64 - exact).abs());
            x += 1e-3;
        }
        // A few ulp near ±1 (one ulp there is 6e-8).
        assert!(worst < 5e-7, "max error {worst}");
        for tiny in [1e-30f32, -1e-20, 1e-8] {
            assert!((tanh_f32(tiny) / tiny - 1.0).abs() < 1e-6, "{tiny}");
        }
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    /// `Mlp::forward_data` and `Mlp::forward_traced` (one operation on values) against the
    /// same network traced layer by layer through dfdx: the output, every weight's and
    /// bias's gradient and (traced) the input's.
    #[test]
    fn a_network_as_one_operation_gives_the_traced_networks_output_and_gradients() {
        let dev = Dev::default();
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(4);
        let x: Mat =
            dev.tensor_from_vec((0..20).map(|i| (i as f32 * 0.37).sin()).collect(), (4, 5));
        let r: Mat = dev.tensor_from_vec((0..8).map(|i| 0.3 - 0.05 * i as f32).collect(), (4, 2));
        for act in [Activation::Tanh, Activation::Relu, Activation::Leaky(0.1)] {
            for widths in [&[5, 2][..], &[5, 4, 3, 2][..]] {
                let mut net = Mlp::with_activation(&dev, widths, act, &mut rng);
                let traced = net.forward(x.leaky_trace(), None);
                let expected_y = traced.as_vec();
                let expected = (traced * r.clone()).sum::<Rank0, _>().backward();
                let close = |a: &[f32], b: &[f32], what: &str| {
                    assert_eq!(a.len(), b.len());
                    for (a, b) in a.iter().zip(b) {
                        assert!(
                            (a - b).abs() < 1e-5,
                            "{act:?} {widths:?} {what}: {a} vs {b}"
                        );
                    }
                };
                let from_data: Mat<OwnedTape<f32, Dev>> = net.forward_data(&x);
                let from_traced = net.forward_traced(x.leaky_trace(), &[0, 1, 2, 3]);
                for (way, y) in [("data", from_data), ("traced", from_traced)] {
                    close(&y.as_vec(), &expected_y, &format!("{way} y"));
                    let got = (y * r.clone()).sum::<Rank0, _>().backward();
                    net.visit_params("", &mut |name, param| match param {
                        ParamMut::Matrix(t) => {
                            close(&got.get(&*t).as_vec(), &expected.get(&*t).as_vec(), &name)
                        }
                        ParamMut::Vector(t) => {
                            close(&got.get(&*t).as_vec(), &expected.get(&*t).as_vec(), &name)
                        }
                    });
                    if way == "traced" {
                        close(&got.get(&x).as_vec(), &expected.get(&x).as_vec(), "input");
                    }
                }
            }
        }
    }

    /// `Mlp::forward_traced` on some rows: those rows' outputs, and their input gradient
    /// added into theirs only (the others' stays as it was).
    #[test]
    fn a_network_on_some_rows_gives_those_rows_and_their_gradient() {
        let dev = Dev::default();
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(5);
        let net = Mlp::with_activation(&dev, &[3, 4, 2], Activation::Leaky(0.1), &mut rng);
        let x: Mat =
            dev.tensor_from_vec((0..12).map(|i| (i as f32 * 0.71).cos()).collect(), (4, 3));
        let r: Mat = dev.tensor_from_vec(vec![0.5, -0.25, 1.0, 0.75], (2, 2));
        let all = net.forward(x.leaky_trace(), None);
        let all_y = all.as_vec();
        // Rows 3 and 1 picked by a 4 × 2 weighting that is zero on rows 0 and 2.
        let mut weights = vec![0f32; 8];
        weights[6..8].copy_from_slice(&[0.5, -0.25]);
        weights[2..4].copy_from_slice(&[1.0, 0.75]);
        let weights: Mat = dev.tensor_from_vec(weights, (4, 2));
        let expected = (all * weights).sum::<Rank0, _>().backward();
        let some = net.forward_traced(x.leaky_trace(), &[3, 1]);
        let some_y = some.as_vec();
        assert_eq!(some_y.len(), 4);
        for (got, want) in some_y.iter().zip(all_y[6..8].iter().chain(&all_y[2..4])) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        let got = (some * r).sum::<Rank0, _>().backward();
        let (got_x, want_x) = (got.get(&x).as_vec(), expected.get(&x).as_vec());
        for (i, (g, w)) in got_x.iter().zip(&want_x).enumerate() {
            assert!((g - w).abs() < 1e-6, "x[{i}]: {g} vs {w}");
        }
        assert!(got_x[..3].iter().chain(&got_x[6..9]).all(|&g| g == 0.0));
    }

    /// A gradient that is not finite, or whose square would overflow, is refused before
    /// anything changes: the weights stay, and the next accepted update gives exactly what
    /// it gives on a copy that never saw the refused one (same moments, same step count).
    #[test]
    fn adam_refuses_an_unsafe_gradient_and_changes_nothing() {
        let dev = Dev::default();
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(1);
        let x: Mat = dev.tensor_from_vec((0..15).map(|i| (i as f32).cos()).collect(), (3, 5));
        let mut net = Mlp::new(&dev, &[5, 4, 3], &mut rng);
        let gradients = |net: &Mlp| {
            net.forward(x.leaky_trace(), None)
                .square()
                .sum::<Rank0, _>()
                .backward()
        };
        let mut adam = Adam::new(1e-2);
        let mut first = gradients(&net);
        assert!(adam.update(&mut net, &mut first).unwrap());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 2e18, -3e19] {
            for in_bias in [false, true] {
                let (mut refused, mut untouched) = ((net.clone(), adam.clone()), adam.clone());
                let mut grads = gradients(&net);
                let layer = &refused.0.layers[1];
                let g = if in_bias {
                    grads.get_or_alloc_mut(&layer.bias).unwrap()
                } else {
                    grads.get_or_alloc_mut(&layer.weight).unwrap()
                };
                g[1] = bad;
                let before = snapshot(&mut refused.0);
                assert!(
                    !refused.1.update(&mut refused.0, &mut grads).unwrap(),
                    "{bad}"
                );
                assert_eq!(snapshot(&mut refused.0), before, "{bad}: weights changed");
                let mut other = net.clone();
                let good = gradients(&net);
                assert!(refused.1.update(&mut refused.0, &mut good.clone()).unwrap());
                assert!(untouched.update(&mut other, &mut good.clone()).unwrap());
                assert_eq!(
                    snapshot(&mut refused.0),
                    snapshot(&mut other),
                    "{bad}: the refused update left a trace in Adam"
                );
            }
        }
    }

    /// `layer_values` over two column blocks of the input (with and without dropout)
    /// against dfdx's own traced ops on the whole input with the same mask, and the
    /// gradient helpers against dfdx's backward pass.
    #[test]
    fn a_layer_on_values_and_its_gradients_match_dfdx() {
        let dev = Dev::default();
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(9);
        let layer = Dense::new(&dev, 5, 6, &mut rng);
        let xv: Vec<f32> = (0..20).map(|i| (i as f32 * 0.61).sin()).collect();
        let x: Mat = dev.tensor_from_vec(xv.clone(), (4, 5));
        let rv: Vec<f32> = (0..24).map(|i| (i as f32 * 0.3).cos()).collect();
        let r: Mat = dev.tensor_from_vec(rv.clone(), (4, 6));
        let dropout = Dropout { prob: 0.3, seed: 5 };
        let keep = dropout.scales(24);
        assert!(keep.contains(&0.0) && keep.iter().any(|&k| k > 1.0));
        let mask: Mat = dev.tensor_from_vec(keep, (4, 6));
        // The input's first 2 columns and its last 3, with their rows of W.
        let (left, right): (Vec<f32>, Vec<f32>) = (
            xv.chunks(5).flat_map(|row| row[..2].to_vec()).collect(),
            xv.chunks(5).flat_map(|row| row[2..].to_vec()).collect(),
        );
        let w = values(&layer.weight);
        let (w_left, w_right) = w.split_at(2 * 6);
        for act in [None, Some(Activation::Tanh), Some(Activation::Leaky(0.1))] {
            for drop in [None, Some(dropout)] {
                let traced = match act {
                    Some(a) => layer.forward_activated(x.leaky_trace(), a),
                    None => layer.forward(x.leaky_trace()),
                };
                let traced = if drop.is_some() {
                    traced * mask.clone()
                } else {
                    traced
                };
                let expected_y = traced.as_vec();
                let expected = (traced * r.clone()).sum::<Rank0, _>().backward();
                let bias = layer.bias.as_vec();
                let got = layer_values(
                    &[(&left, w_left), (&right, w_right)],
                    &bias,
                    act,
                    drop,
                    true,
                );
                let close = |a: &[f32], b: &[f32], what: &str| {
                    assert_eq!(a.len(), b.len(), "{what}");
                    for (a, b) in a.iter().zip(b) {
                        assert!((a - b).abs() < 1e-5, "{act:?} {drop:?} {what}: {a} vs {b}");
                    }
                };
                close(&got.out, &expected_y, "y");
                let mut g = rv.clone();
                times(&mut g, &got.derivative);
                let (mut gw, mut gb, mut gx) = (vec![0f32; 30], vec![0f32; 6], vec![0f32; 20]);
                add_weight_grad(&mut gw, &xv, &g, 6);
                add_bias_grad(&mut gb, &g);
                add_input_grad(&mut gx, &g, &w, 6);
                close(&gw, &expected.get(&layer.weight).as_vec(), "∂W");
                close(&gb, &expected.get(&layer.bias).as_vec(), "∂b");
                close(&gx, &expected.get(&x).as_vec(), "∂x");
            }
        }
    }

    #[test]
    fn bias_activation_backpropagates_to_its_input_and_its_bias() {
        let dev = Dev::default();
        let values = vec![-3.0f32, -0.5, 0.0, 0.25, 1.0, 4.0];
        let x: Mat = dev.tensor_from_vec(values.clone(), (2, 3));
        let weights: Mat = dev.tensor_from_vec(vec![1.0, -2.0, 0.5, 3.0, 1.5, -1.0], (2, 3));
        let bias: Vector = dev.tensor_from_vec(vec![0.5, -0.25, 0.0], (3,));
        for act in [Activation::Tanh, Activation::Relu, Activation::Leaky(0.1)] {
            let y = bias_activation(x.leaky_trace(), &bias, Some(act));
            let grads = (y * weights.clone()).sum::<Rank0, _>().backward();
            let (gx, gb) = (grads.get(&x).as_vec(), grads.get(&bias).as_vec());
            let b = bias.as_vec();
            let mut expected_b = [0f64; 3];
            for (i, (g, v)) in gx.iter().zip(&values).enumerate() {
                let a = (*v + b[i % 3]) as f64;
                let slope = match act {
                    Activation::Tanh => 1.0 - a.tanh() * a.tanh(),
                    Activation::Relu => f64::from(u8::from(a > 0.0)),
                    Activation::Leaky(s) => {
                        if a > 0.0 {
                            1.0
                        } else {
                            s as f64
                        }
                    }
                };
                let expected = weights.as_vec()[i] as f64 * slope;
                expected_b[i % 3] += expected;
                assert!(
                    (*g as f64 - expected).abs() < 1e-6,
                    "{act:?}: {g} vs {expected}"
                );
            }
            for (g, e) in gb.iter().zip(expected_b) {
                assert!((*g as f64 - e).abs() < 1e-5, "{act:?} bias: {g} vs {e}");
            }
        }
    }
}
