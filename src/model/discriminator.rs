//! EGBAD's discriminator D(x, z), and its pass over a batch of pairs as one operation with
//! its own backward pass. Three quarters of an EGBAD step's multiply-adds are D's; as one
//! operation on plain values no layer's output is copied into a dfdx tensor and out again,
//! the two branches need no concatenation (the joint layer multiplies each branch by its
//! own block of weights), and each player's step computes only the gradients it reads:
//! D's half its weights' gradients, E and G's half ∂/∂E(x) and ∂/∂G(z) alone (not ∂/∂x of
//! the data rows, nor ∂/∂z of the drawn codes).

use std::ops::Range;

use dfdx::prelude::*;
use dfdx::tensor::Gradients;

use super::dense::{
    add_bias_grad, add_input_grad, add_weight_grad, layer_values, times, values, Activation, Dense,
    Dev, Dropout, LayerValues, Mat, ParamMut, Params,
};

/// The discriminator D(x, z): an x branch and a z branch, joined.
#[derive(Debug, Clone)]
pub struct Discriminator {
    pub x_branch: Dense,
    pub z_branch: Dense,
    /// Its output (after the activation) is f_D, the features feature matching compares.
    pub joint: Dense,
    pub logit: Dense,
}

/// Which player learns from a training pass through D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Player {
    /// D's own half of the step: gradients reach D's weights only.
    Discriminator,
    /// E and G's half: gradients pass through D (whose weights stay fixed) to E(x) and G(z).
    GeneratorEncoder,
}

/// How D's layers behave in a pass: their leaky ReLUs' slope below zero and (in training)
/// dropout's probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judging {
    /// The leaky ReLUs' slope below zero.
    pub leak: f32,
    /// Dropout's probability after each hidden layer (0: none).
    pub dropout: f64,
}

/// D's values over a batch of pairs, with what its backward pass reads.
struct Judgement {
    /// The pairs' x rows and z rows.
    inputs: Vec<f32>,
    codes: Vec<f32>,
    /// The weights of the x branch, the z branch, the joint layer and the logit, as used.
    weights: [Vec<f32>; 4],
    branch_x: LayerValues,
    branch_z: LayerValues,
    /// f_D, the joint layer's output.
    features: LayerValues,
    logits: Vec<f32>,
}

impl Discriminator {
    /// D over the pairs (row i of `inputs`, row i of `codes`); `dropout` holds the masks'
    /// draws of the x branch, the z branch and the joint layer, in that order (training).
    fn judge_values(
        &self,
        inputs: Vec<f32>,
        codes: Vec<f32>,
        leak: f32,
        dropout: Option<[Dropout; 3]>,
        with_derivative: bool,
    ) -> Judgement {
        let leaky = Some(Activation::Leaky(leak));
        let weights = [
            values(&self.x_branch.weight),
            values(&self.z_branch.weight),
            values(&self.joint.weight),
            values(&self.logit.weight),
        ];
        let [wx, wz, wj, wl] = &weights;
        let mask = |i: usize| dropout.map(|d| d[i]);
        let layer = |products: &[(&[f32], &[f32])], dense: &Dense, act, drop| {
            layer_values(products, &dense.bias.as_vec(), act, drop, with_derivative)
        };
        let branch_x = layer(&[(&inputs, wx)], &self.x_branch, leaky, mask(0));
        let branch_z = layer(&[(&codes, wz)], &self.z_branch, leaky, mask(1));
        let (top, bottom) = wj.split_at(self.x_branch.outputs() * self.joint.outputs());
        let features = layer(
            &[(&branch_x.out, top), (&branch_z.out, bottom)],
            &self.joint,
            leaky,
            mask(2),
        );
        let logits = layer(&[(&features.out, wl)], &self.logit, None, None).out;
        Judgement {
            inputs,
            codes,
            weights,
            branch_x,
            branch_z,
            features,
            logits,
        }
    }

    /// D's logits and joint features f_D for the pairs (row i of `x`, row i of `z`), in
    /// evaluation mode (no dropout, no tape): what scoring reads.
    pub fn judge(&self, x: Vec<f32>, z: Vec<f32>, leak: f32) -> (Vec<f32>, Vec<f32>) {
        let judged = self.judge_values(x, z, leak, None, false);
        (judged.logits, judged.features.out)
    }

    /// D's logits for the real pairs (x, E(x)) followed by the generated ones (G(z), z),
    /// `2m × 1` for `m` rows of `x` (data) and `z` (drawn codes), traced for `player`'s
    /// half of the step. The tapes of `encoded` and `generated` carry through: in E and G's
    /// half the gradients reach them (D's weights get none); in D's half only D's weights
    /// get gradients (pass E(x) and G(z) on fresh tapes).
    pub fn play<T: Tape<f32, Dev> + Merge<T>>(
        &self,
        dev: &Dev,
        (x, encoded): (&[f32], Mat<T>),
        (generated, z): (Mat<T>, &[f32]),
        judging: Judging,
        player: Player,
    ) -> Mat<T> {
        let (encoded, encoded_tape) = encoded.split_tape();
        let (generated, generated_tape) = generated.split_tape();
        let mut tape = encoded_tape.merge(generated_tape);
        let (m, latent) = *encoded.shape();
        let input = generated.shape().1;
        assert!(
            x.len() == m * input && z.len() == m * latent && generated.shape().0 == m,
            "D's pairs: {m} encoded rows against {} data values and {} codes",
            x.len(),
            z.len()
        );
        let mut inputs = x.to_vec();
        inputs.resize(2 * m * input, 0.0);
        generated.copy_into(&mut inputs[m * input..]);
        let mut codes = vec![0f32; m * latent];
        encoded.copy_into(&mut codes);
        codes.extend_from_slice(z);
        let dropout =
            (judging.dropout > 0.0).then(|| [0; 3].map(|_| Dropout::drawn(dev, judging.dropout)));
        let mut judged = self.judge_values(inputs, codes, judging.leak, dropout, T::OWNS_TAPE);
        // The backward pass does not read the logits.
        let out: Mat = dev.tensor_from_vec(std::mem::take(&mut judged.logits), (2 * m, 1));
        if T::OWNS_TAPE {
            let out_id = out.ghost();
            let (encoded_id, generated_id) = (encoded.ghost(), generated.ghost());
            let layers = [&self.x_branch, &self.z_branch, &self.joint, &self.logit];
            let weight_ids = layers.map(|l| l.weight.ghost());
            let bias_ids = layers.map(|l| l.bias.ghost());
            let (width, z_width) = (self.x_branch.outputs(), self.z_branch.outputs());
            let joint = self.joint.outputs();
            let learns = player == Player::Discriminator;
            tape.add_backward_op(move |grads| {
                let j = &judged;
                let [wx, wz, wj, wl] = &j.weights;
                let rows = 2 * m;
                // D's half: layer `i`'s weight and bias gradients from its input and `g`.
                let learn =
                    |grads: &mut Gradients<f32, Dev>, i: usize, input: &[f32], g: &[f32]| {
                        let outputs = g.len() / rows.max(1);
                        add_weight_grad(grads.get_or_alloc_mut(&weight_ids[i])?, input, g, outputs);
                        add_bias_grad(grads.get_or_alloc_mut(&bias_ids[i])?, g);
                        Ok::<(), <Dev as HasErr>::Err>(())
                    };
                // The logit's gradient is read by this operation only (it made the logits).
                let g: Vec<f32> = std::mem::take(grads.get_or_alloc_mut(&out_id)?);
                if learns {
                    learn(grads, 3, &j.features.out, &g)?;
                }
                let mut g_features = vec![0f32; rows * joint];
                add_input_grad(&mut g_features, &g, wl, 1);
                times(&mut g_features, &j.features.derivative);
                let (top, bottom) = wj.split_at(width * joint);
                if learns {
                    let into = grads.get_or_alloc_mut(&weight_ids[2])?;
                    let (into_top, into_bottom) = into.split_at_mut(width * joint);
                    add_weight_grad(into_top, &j.branch_x.out, &g_features, joint);
                    add_weight_grad(into_bottom, &j.branch_z.out, &g_features, joint);
                    add_bias_grad(grads.get_or_alloc_mut(&bias_ids[2])?, &g_features);
                }
                // A branch's pre-activation gradient over `span` of the rows. E and G's
                // half needs the x branch's for the generated rows only and the z
                // branch's for the encoded rows only: the data rows and the drawn codes
                // need no gradient.
                let branch = |span: Range<usize>, w: &[f32], out: usize, values: &LayerValues| {
                    let mut g = vec![0f32; span.len() * out];
                    add_input_grad(
                        &mut g,
                        &g_features[span.start * joint..span.end * joint],
                        w,
                        joint,
                    );
                    times(&mut g, &values.derivative[span.start * out..span.end * out]);
                    g
                };
                let (x_rows, z_rows) = if learns {
                    (0..rows, 0..rows)
                } else {
                    (m..rows, 0..m)
                };
                let g_x = branch(x_rows, top, width, &j.branch_x);
                let g_z = branch(z_rows, bottom, z_width, &j.branch_z);
                if learns {
                    learn(grads, 0, &j.inputs, &g_x)?;
                    learn(grads, 1, &j.codes, &g_z)?;
                } else {
                    add_input_grad(grads.get_or_alloc_mut(&generated_id)?, &g_x, wx, width);
                    add_input_grad(grads.get_or_alloc_mut(&encoded_id)?, &g_z, wz, z_width);
                }
                Ok(())
            });
        }
        out.put_tape(tape)
    }
}

impl Params for Discriminator {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        self.x_branch.visit_params(&format!("{prefix}.x"), f);
        self.z_branch.visit_params(&format!("{prefix}.z"), f);
        self.joint.visit_params(&format!("{prefix}.joint"), f);
        self.logit.visit_params(&format!("{prefix}.logit"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    const LEAK: f32 = 0.1;

    fn filled(dev: &Dev, rows: usize, cols: usize, phase: f32) -> Mat {
        let v = (0..rows * cols)
            .map(|i| (i as f32 * 0.37 + phase).sin())
            .collect();
        dev.tensor_from_vec(v, (rows, cols))
    }

    fn small_discriminator(dev: &Dev) -> Discriminator {
        let mut rng = StdRng::seed_from_u64(2);
        Discriminator {
            x_branch: Dense::new(dev, 5, 4, &mut rng),
            z_branch: Dense::new(dev, 2, 4, &mut rng),
            joint: Dense::new(dev, 8, 4, &mut rng),
            logit: Dense::new(dev, 4, 1, &mut rng),
        }
    }

    /// D composed of dfdx's own traced operations: the two branches concatenated, the
    /// same dropout masks (drawn from a device seeded as `play`'s).
    fn reference<T: Tape<f32, Dev> + Merge<T>>(
        d: &Discriminator,
        inputs: Mat<T>,
        codes: Mat<T>,
        masks: Option<[Dropout; 3]>,
    ) -> Mat<T> {
        let dev = inputs.device().clone();
        let leaky = Activation::Leaky(LEAK);
        let masked = |y: Mat<T>, i: usize| match masks {
            Some(m) => {
                let shape = *y.shape();
                let mask: Mat = dev.tensor_from_vec(m[i].scales(shape.0 * shape.1), shape);
                y * mask
            }
            None => y,
        };
        let hx = masked(d.x_branch.forward_activated(inputs, leaky), 0);
        let hz = masked(d.z_branch.forward_activated(codes, leaky), 1);
        let joined = (hx, hz).concat_along(Axis::<1>);
        let features = masked(d.joint.forward_activated(joined, leaky), 2);
        d.logit.forward(features)
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (a, b) in a.iter().zip(b) {
            assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b}");
        }
    }

    /// Both players' passes against dfdx's composition, dropout included: the logits, D's
    /// weight gradients in D's half, and ∂/∂E(x), ∂/∂G(z) in E and G's half.
    #[test]
    fn each_players_pass_matches_d_composed_of_dfdx_operations() {
        let dev = Dev::default();
        let d = small_discriminator(&dev);
        let m = 3;
        let (x, z) = (filled(&dev, m, 5, 0.0), filled(&dev, m, 2, 1.0));
        let (encoded, generated) = (filled(&dev, m, 2, 2.0), filled(&dev, m, 5, 3.0));
        let weights: Mat = dev.tensor_from_vec(
            (0..2 * m).map(|i| 1.0 - 0.3 * i as f32).collect(),
            (2 * m, 1),
        );
        for dropout in [0.0, 0.4] {
            let judging = Judging {
                leak: LEAK,
                dropout,
            };
            let masks = (dropout > 0.0).then(|| {
                let seeded = Dev::seed_from_u64(7);
                [0; 3].map(|_| Dropout::drawn(&seeded, dropout))
            });
            let inputs = (x.leaky_trace(), generated.leaky_trace()).concat_along(Axis::<0>);
            let codes = (encoded.leaky_trace(), z.leaky_trace()).concat_along(Axis::<0>);
            let expected = reference(&d, inputs, codes, masks);
            let expected_logits = expected.as_vec();
            let expected = (expected * weights.clone()).sum::<Rank0, _>().backward();
            for player in [Player::Discriminator, Player::GeneratorEncoder] {
                let logits = d.play(
                    &Dev::seed_from_u64(7),
                    (&x.as_vec(), encoded.leaky_trace()),
                    (generated.leaky_trace(), &z.as_vec()),
                    judging,
                    player,
                );
                close(&logits.as_vec(), &expected_logits, "logits");
                let got = (logits * weights.clone()).sum::<Rank0, _>().backward();
                let what = format!("{player:?}, dropout {dropout}");
                match player {
                    Player::Discriminator => {
                        for layer in [&d.x_branch, &d.z_branch, &d.joint, &d.logit] {
                            let (w, b) = (&layer.weight, &layer.bias);
                            close(&got.get(w).as_vec(), &expected.get(w).as_vec(), &what);
                            close(&got.get(b).as_vec(), &expected.get(b).as_vec(), &what);
                        }
                    }
                    Player::GeneratorEncoder => {
                        let (e, g) = (&encoded, &generated);
                        close(&got.get(e).as_vec(), &expected.get(e).as_vec(), &what);
                        close(&got.get(g).as_vec(), &expected.get(g).as_vec(), &what);
                    }
                }
            }
        }
    }

    /// D's half's weight gradients and E and G's half's input gradients against central
    /// finite differences of Σ r ⊙ logits (no dropout).
    #[test]
    fn each_players_gradients_match_finite_differences() {
        let dev = Dev::default();
        let d = small_discriminator(&dev);
        let m = 3;
        let (x, z) = (
            filled(&dev, m, 5, 0.5).as_vec(),
            filled(&dev, m, 2, 1.5).as_vec(),
        );
        let (encoded, generated) = (filled(&dev, m, 2, 2.5), filled(&dev, m, 5, 3.5));
        let r: Vec<f32> = (0..2 * m).map(|i| 0.5 + 0.25 * i as f32).collect();
        let judging = Judging {
            leak: LEAK,
            dropout: 0.0,
        };
        let loss = |d: &Discriminator, encoded: &Mat, generated: &Mat| -> f64 {
            let (logits, _) = d.judge(
                [x.clone(), generated.as_vec()].concat(),
                [encoded.as_vec(), z.clone()].concat(),
                LEAK,
            );
            logits.iter().zip(&r).map(|(l, r)| (l * r) as f64).sum()
        };
        let weighted = |logits: Mat<OwnedTape<f32, Dev>>| {
            let r: Mat = dev.tensor_from_vec(r.clone(), (2 * m, 1));
            (logits * r).sum::<Rank0, _>().backward()
        };
        let h = 1e-2f32;
        let numeric = |up: f64, down: f64| (up - down) / (2.0 * h as f64);
        let grads = weighted(d.play(
            &dev,
            (&x, encoded.retaped()),
            (generated.retaped(), &z),
            judging,
            Player::Discriminator,
        ));
        for which in 0..4 {
            fn pick(d: &mut Discriminator, which: usize) -> &mut Dense {
                [&mut d.x_branch, &mut d.z_branch, &mut d.joint, &mut d.logit]
                    .into_iter()
                    .nth(which)
                    .expect("four layers")
            }
            let analytic = grads.get(&pick(&mut d.clone(), which).weight).as_vec();
            for i in 0..analytic.len() {
                let nudged = |by: f32| {
                    let mut e = d.clone();
                    let layer = pick(&mut e, which);
                    let mut w = values(&layer.weight);
                    w[i] += by;
                    layer.weight.copy_from(&w);
                    loss(&e, &encoded, &generated)
                };
                let n = numeric(nudged(h), nudged(-h));
                assert!(
                    (n - analytic[i] as f64).abs() < 2e-3,
                    "layer {which} w[{i}]: {n} vs {}",
                    analytic[i]
                );
            }
        }
        let grads = weighted(d.play(
            &dev,
            (&x, encoded.leaky_trace()),
            (generated.leaky_trace(), &z),
            judging,
            Player::GeneratorEncoder,
        ));
        for (input, is_encoded) in [(&encoded, true), (&generated, false)] {
            let analytic = grads.get(input).as_vec();
            for i in 0..analytic.len() {
                let nudged = |by: f32| {
                    let mut v = input.as_vec();
                    v[i] += by;
                    let moved: Mat = dev.tensor_from_vec(v, *input.shape());
                    if is_encoded {
                        loss(&d, &moved, &generated)
                    } else {
                        loss(&d, &encoded, &moved)
                    }
                };
                let n = numeric(nudged(h), nudged(-h));
                assert!(
                    (n - analytic[i] as f64).abs() < 2e-3,
                    "input {i}: {n} vs {}",
                    analytic[i]
                );
            }
        }
    }
}
