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
use rand::{rngs::StdRng, Rng};

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

    /// `activation(x·W + b)` for rows of data `x`, which need no gradient: the tape `T`
    /// starts here and records W and b only. Tracing `x` instead would make dfdx compute
    /// ∂/∂x, a product as large as the layer's forward one, that nobody reads.
    pub fn forward_data<T: Tape<f32, Dev>>(
        &self,
        x: &Mat,
        activation: Option<Activation>,
    ) -> Mat<T> {
        let y = bias_activation(
            x.clone().matmul(self.weight.clone()),
            &self.bias,
            activation,
        );
        let mut tape = T::default();
        if T::OWNS_TAPE {
            let (x, y_kept) = (x.clone(), y.clone());
            let (w_id, b_id, y_id) = (self.weight.ghost(), self.bias.ghost(), y.ghost());
            tape.add_backward_op(move |grads| {
                let shape = *y_kept.shape();
                grads.try_alloc_for(&y_id)?;
                let mut upstream = vec![0f32; shape.0 * shape.1];
                grads.get(&y_id).copy_into(&mut upstream);
                if let Some(act) = activation {
                    let mut y = vec![0f32; upstream.len()];
                    y_kept.copy_into(&mut y);
                    upstream
                        .iter_mut()
                        .zip(&y)
                        .for_each(|(g, &y)| *g *= act.derivative(y));
                }
                let g: Mat = x.device().tensor_from_vec(upstream, shape);
                let mut weight_grad = vec![0f32; x.shape().1 * shape.1];
                x.clone()
                    .permute::<_, Axes2<1, 0>>()
                    .matmul(g.clone())
                    .copy_into(&mut weight_grad);
                let into_w = grads.get_or_alloc_mut(&w_id)?;
                into_w
                    .iter_mut()
                    .zip(&weight_grad)
                    .for_each(|(s, v)| *s += v);
                let column_sums = g.sum::<(usize,), Axis<0>>().as_vec();
                let into_b = grads.get_or_alloc_mut(&b_id)?;
                into_b
                    .iter_mut()
                    .zip(&column_sums)
                    .for_each(|(s, v)| *s += v);
                Ok(())
            });
        }
        y.put_tape(tape)
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

    /// Forward pass; `dropout_after_hidden` applies dropout (training only) after each hidden activation.
    pub fn forward<T: Tape<f32, Dev>>(
        &self,
        x: Mat<T>,
        dropout_after_hidden: Option<f64>,
    ) -> Mat<T> {
        self.forward_from(x, 0, dropout_after_hidden)
    }

    /// Forward pass of rows of data, which need no gradient: the tape `T` starts at the
    /// first layer (see [`Dense::forward_data`]).
    pub fn forward_data<T: Tape<f32, Dev>>(
        &self,
        x: &Mat,
        dropout_after_hidden: Option<f64>,
    ) -> Mat<T> {
        let hidden = self.layers.len() > 1;
        let first = self.layers[0].forward_data(x, hidden.then_some(self.activation));
        match dropout_after_hidden.filter(|_| hidden) {
            Some(p) => self.forward_from(first.dropout(p), 1, dropout_after_hidden),
            None => self.forward_from(first, 1, dropout_after_hidden),
        }
    }

    /// Layers `start..` applied to `x`.
    fn forward_from<T: Tape<f32, Dev>>(
        &self,
        mut x: Mat<T>,
        start: usize,
        dropout_after_hidden: Option<f64>,
    ) -> Mat<T> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate().skip(start) {
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
    /// entry gets a zero gradient).
    pub fn update(
        &mut self,
        model: &mut impl Params,
        grads: &mut Gradients<f32, Dev>,
    ) -> Result<()> {
        self.step += 1;
        let (step, config) = (self.step, self.config);
        let (m1, m2) = (&mut self.first_moment, &mut self.second_moment);
        let mut failure = None;
        model.visit_params("", &mut |name, param| {
            let result = match param {
                ParamMut::Matrix(t) => update_one(&config, step, t, m1, m2, grads),
                ParamMut::Vector(t) => update_one(&config, step, t, m1, m2, grads),
            };
            if let Err(e) = result {
                failure.get_or_insert(anyhow!("Adam update of {name}: {e:?}"));
            }
        });
        failure.map_or(Ok(()), Err)
    }
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

/// `true` when every parameter value is finite (used to detect a diverged step).
pub fn all_finite(model: &mut impl Params) -> bool {
    snapshot(model)
        .iter()
        .all(|(_, _, v)| v.iter().all(|x| x.is_finite()))
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

    #[test]
    fn a_first_layer_on_data_gives_the_traced_layers_weight_gradients() {
        let dev = Dev::default();
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(4);
        let layer = Dense::new(&dev, 5, 3, &mut rng);
        let x: Mat =
            dev.tensor_from_vec((0..20).map(|i| (i as f32 * 0.37).sin()).collect(), (4, 5));
        let w: Mat = dev.tensor_from_vec((0..12).map(|i| 0.3 - 0.05 * i as f32).collect(), (4, 3));
        for act in [None, Some(Activation::Tanh), Some(Activation::Leaky(0.1))] {
            let traced = match act {
                Some(a) => layer.forward_activated(x.leaky_trace(), a),
                None => layer.forward(x.leaky_trace()),
            };
            let expected = (traced * w.clone()).sum::<Rank0, _>().backward();
            let from_data: Mat<OwnedTape<f32, Dev>> = layer.forward_data(&x, act);
            let got = (from_data * w.clone()).sum::<Rank0, _>().backward();
            for (a, b) in [
                (
                    got.get(&layer.weight).as_vec(),
                    expected.get(&layer.weight).as_vec(),
                ),
                (
                    got.get(&layer.bias).as_vec(),
                    expected.get(&layer.bias).as_vec(),
                ),
            ] {
                for (a, b) in a.iter().zip(&b) {
                    assert!((a - b).abs() < 1e-5, "{act:?}: {a} vs {b}");
                }
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
