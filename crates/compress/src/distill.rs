//! Knowledge distillation: a small student learns from a frozen teacher, which only
//! runs forward, under `no_grad`, in inference mode. Three kinds of knowledge, each a
//! [`slimbench_train::Objective`]:
//!
//! * **Response-based** ([`Distillation`], Hinton et al.): the teacher's
//!   temperature-softened class probabilities as well as the labels,
//!   `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`; the T^2
//!   keeps the soft-target gradients at the scale of the hard-label ones.
//! * **Feature-based** ([`Hint`], FitNets, Romero et al.): a learned [`Regressor`] maps
//!   the student's activations at one point (its "guided layer") onto the teacher's at
//!   another (its "hint layer"), and the student's layers up to there are trained to
//!   make the two match (mean squared error); response-based training follows.
//! * **Relation-based** ([`Relation`], similarity-preserving, Tung & Mori): the
//!   student's activations should relate the images of a batch to each other as the
//!   teacher's do: the row-normalised batch Gram matrices `normalize(F F^T)` of the two
//!   should match, `beta * ||G_s - G_t||^2 / b^2`, added to the response-based loss.
//!
//! Activations are taken at the points of [`slimbench_models::ops`] (after a layer's
//! ReLU), through a [`Capture`] tap.

use slimbench_models::Model;
use slimbench_models::ops::Tap;
use slimbench_train::Objective;
use tch::{Device, Kind, Tensor, nn};

/// The distillation objective.
#[derive(Debug)]
pub struct Distillation<'a> {
    /// The frozen teacher.
    pub teacher: &'a Model,
    /// Softmax temperature.
    pub temperature: f64,
    /// Weight of the soft-target term.
    pub alpha: f64,
}

/// `KL(softmax(teacher/T) || softmax(student/T))`, averaged over the batch.
pub fn soft_kl(student_logits: &Tensor, teacher_logits: &Tensor, temperature: f64) -> Tensor {
    let log_p_student = (student_logits / temperature).log_softmax(-1, Kind::Float);
    let log_p_teacher = (teacher_logits / temperature).log_softmax(-1, Kind::Float);
    (log_p_teacher.exp() * (&log_p_teacher - log_p_student))
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float)
}

impl Distillation<'_> {
    /// `alpha * T^2 * KL + (1 - alpha) * CE` for given student and teacher logits.
    pub fn combine(&self, logits: &Tensor, teacher_logits: &Tensor, ys: &Tensor) -> Tensor {
        let t = self.temperature;
        let soft = soft_kl(logits, teacher_logits, t) * (t * t);
        let hard = logits.cross_entropy_for_logits(ys);
        soft * self.alpha + hard * (1.0 - self.alpha)
    }
}

impl Objective for Distillation<'_> {
    fn loss(&mut self, student: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor) {
        let teacher_logits = tch::no_grad(|| self.teacher.forward_t(xs, false));
        let logits = student.forward_t(xs, true);
        (self.combine(&logits, &teacher_logits, ys), logits)
    }
}

/// Records the activation at one point of a model's forward pass (with its graph).
#[derive(Debug)]
pub struct Capture {
    point: String,
    /// The activation, once the point was passed.
    pub value: Option<Tensor>,
}

impl Capture {
    /// A capture of `point`.
    pub fn new(point: &str) -> Self {
        Capture { point: point.to_string(), value: None }
    }
}

impl Tap for Capture {
    fn activation(&mut self, point: &str, x: &Tensor) -> Option<Tensor> {
        if point == self.point {
            self.value = Some(x.shallow_clone());
        }
        None
    }
}

/// Why features cannot be taken where asked.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The model has no such activation point.
    #[error("model `{model}` has no activation point `{point}` (its points: {points})")]
    NoPoint {
        /// The model.
        model: String,
        /// The point asked for.
        point: String,
        /// The points it has.
        points: String,
    },
}

/// A model's logits and its activation at `point`, in one forward pass.
pub fn forward_features(model: &Model, xs: &Tensor, train: bool, point: &str) -> (Tensor, Tensor) {
    let mut cap = Capture::new(point);
    let logits = model.forward_tapped(xs, train, &mut cap);
    let feats = cap.value.unwrap_or_else(|| panic!("point `{point}` was checked by `feature_shape`"));
    (logits, feats)
}

/// The activation points of a model, input to output.
pub fn point_names(model: &Model) -> Vec<String> {
    slimbench_models::ops::points(&model.ops()).into_iter().map(|p| p.name).collect()
}

/// Where features are taken by default: the model's last convolution, else the layer
/// before its classifier, else its input.
pub fn default_point(model: &Model) -> String {
    if let Some(c) = model.convs().last() {
        return c.name().to_string();
    }
    let layers = model.layer_names();
    match layers.len() {
        0 | 1 => slimbench_models::ops::INPUT.to_string(),
        n => layers[n - 2].clone(),
    }
}

/// The shape of one image's activation at `point` (`[C, H, W]` or `[D]`).
pub fn feature_shape(model: &Model, point: &str) -> Result<Vec<i64>, FeatureError> {
    if !point_names(model).iter().any(|p| p == point) {
        return Err(FeatureError::NoPoint {
            model: model.name.clone(),
            point: point.to_string(),
            points: point_names(model).join(", "),
        });
    }
    let io = model.io;
    let x = Tensor::zeros([1, io.channels, io.height, io.width], (Kind::Float, model.device()));
    let (_, f) = tch::no_grad(|| forward_features(model, &x, false, point));
    Ok(f.size()[1..].to_vec())
}

/// FitNets' regressor: maps student activations onto the teacher's shape. Between two
/// convolutional activations it is a 1x1 convolution, and both sides are average-pooled
/// to the smaller of the two spatial sizes; otherwise each side is pooled to one value
/// per channel (when spatial) and a linear layer maps student onto teacher.
#[derive(Debug)]
pub struct Regressor {
    vs: nn::VarStore,
    map: RegressorMap,
}

#[derive(Debug)]
enum RegressorMap {
    Conv { conv: nn::Conv2D, size: [i64; 2] },
    Linear(nn::Linear),
}

/// `[N, C, H, W]` -> `[N, C]` by global average pooling; `[N, D]` unchanged.
fn per_channel(x: &Tensor) -> Tensor {
    if x.dim() == 4 { x.mean_dim([2, 3].as_slice(), false, Kind::Float) } else { x.flatten(1, -1) }
}

impl Regressor {
    /// A regressor from one image's student activation `student` to the teacher's
    /// `teacher` (shapes from [`feature_shape`]), seeded.
    pub fn new(student: &[i64], teacher: &[i64], device: Device, seed: u64) -> Self {
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(device);
        let map = match (student, teacher) {
            ([cs, hs, ws], [ct, ht, wt]) => RegressorMap::Conv {
                conv: nn::conv2d(vs.root() / "regressor", *cs, *ct, 1, Default::default()),
                size: [(*hs).min(*ht), (*ws).min(*wt)],
            },
            _ => RegressorMap::Linear(nn::linear(
                vs.root() / "regressor",
                student[0],
                teacher[0],
                Default::default(),
            )),
        };
        Regressor { vs, map }
    }

    /// `(regressed student, teacher)`, of one shape.
    pub fn align(&self, student: &Tensor, teacher: &Tensor) -> (Tensor, Tensor) {
        match &self.map {
            RegressorMap::Conv { conv, size } => {
                let s = student.apply(conv);
                let pool =
                    |x: Tensor| if x.size()[2..] == size[..] { x } else { x.adaptive_avg_pool2d(size) };
                (pool(s), pool(teacher.shallow_clone()))
            }
            RegressorMap::Linear(l) => (per_channel(student).apply(l), per_channel(teacher)),
        }
    }

    /// Its parameters.
    pub fn vs(&self) -> &nn::VarStore {
        &self.vs
    }
}

/// FitNets' hint stage: the student's activation at `student_point`, regressed, should
/// match the teacher's at `teacher_point` (mean squared error).
#[derive(Debug)]
pub struct Hint<'a> {
    /// The frozen teacher.
    pub teacher: &'a Model,
    /// The student's guided point.
    pub student_point: String,
    /// The teacher's hint point.
    pub teacher_point: String,
    /// The regressor, trained with the student.
    pub regressor: Regressor,
}

impl Objective for Hint<'_> {
    fn loss(&mut self, student: &Model, xs: &Tensor, _ys: &Tensor) -> (Tensor, Tensor) {
        let (_, ft) = tch::no_grad(|| forward_features(self.teacher, xs, false, &self.teacher_point));
        let (logits, fs) = forward_features(student, xs, true, &self.student_point);
        let (pred, target) = self.regressor.align(&fs, &ft);
        (pred.mse_loss(&target, tch::Reduction::Mean), logits)
    }

    fn parameters(&self) -> Option<&nn::VarStore> {
        Some(self.regressor.vs())
    }
}

/// The similarity-preserving loss: `||normalize(S S^T) - normalize(T T^T)||_F^2 / b^2`
/// for the batch's flattened student and teacher activations (any widths).
pub fn similarity_loss(student: &Tensor, teacher: &Tensor) -> Tensor {
    let b = student.size()[0];
    let gram = |x: &Tensor| {
        let f = x.flatten(1, -1).to_kind(Kind::Float);
        let g = f.matmul(&f.tr());
        let norm = g.norm_scalaropt_dim(2.0, [1].as_slice(), true).clamp_min(1e-12);
        g / norm
    };
    (gram(student) - gram(teacher)).square().sum(Kind::Float) / (b * b) as f64
}

/// Relation-based distillation: the response-based loss plus `beta` times the
/// similarity-preserving loss between the student's activations at `student_point` and
/// the teacher's at `teacher_point`.
#[derive(Debug)]
pub struct Relation<'a> {
    /// The response-based part (its teacher, temperature and alpha).
    pub response: Distillation<'a>,
    /// Weight of the similarity-preserving term.
    pub beta: f64,
    /// The student's point.
    pub student_point: String,
    /// The teacher's point.
    pub teacher_point: String,
}

impl Objective for Relation<'_> {
    fn loss(&mut self, student: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor) {
        let teacher = self.response.teacher;
        let (t_logits, ft) = tch::no_grad(|| forward_features(teacher, xs, false, &self.teacher_point));
        let (logits, fs) = forward_features(student, xs, true, &self.student_point);
        let response = self.response.combine(&logits, &t_logits, ys);
        (response + similarity_loss(&fs, &ft) * self.beta, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_is_zero_for_equal_logits_and_positive_otherwise() {
        let a = Tensor::randn([4, 10], (Kind::Float, Device::Cpu));
        assert!(soft_kl(&a, &a, 4.0).double_value(&[]).abs() < 1e-6);
        let b = Tensor::randn([4, 10], (Kind::Float, Device::Cpu));
        assert!(soft_kl(&a, &b, 4.0).double_value(&[]) > 0.0);
    }

    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{CnnConfig, ModelConfig, SeedCnnConfig};

    const IO: IoShape = IoShape { channels: 1, height: 28, width: 28, classes: 10 };

    fn pair() -> (Model, Model) {
        let t = ModelConfig::Cnn(CnnConfig { channels: vec![8, 16], hidden: 32, dropout: 0.0 });
        let s = ModelConfig::SeedCnn(SeedCnnConfig { filters: 4 });
        let mut teacher = Model::build("t", &t, IO, Device::Cpu, Some(1)).unwrap();
        teacher.freeze();
        (teacher, Model::build("s", &s, IO, Device::Cpu, Some(2)).unwrap())
    }

    #[test]
    fn features_come_from_named_points_with_their_shapes() {
        let (teacher, student) = pair();
        assert_eq!((default_point(&teacher), default_point(&student)), ("conv1".into(), "conv".into()));
        assert_eq!(feature_shape(&teacher, "conv1").unwrap(), [16, 14, 14]);
        assert_eq!(feature_shape(&teacher, "hidden").unwrap(), [32]);
        assert_eq!(feature_shape(&student, "conv").unwrap(), [4, 26, 26]);
        let e = feature_shape(&student, "conv9").unwrap_err().to_string();
        assert_eq!(e, "model `s` has no activation point `conv9` (its points: input, conv, fc)");
    }

    #[test]
    fn the_hint_loss_trains_the_student_and_the_regressor_not_the_teacher() {
        let (teacher, student) = pair();
        let r = Regressor::new(&[4, 26, 26], &[16, 14, 14], Device::Cpu, 3);
        let mut hint = Hint {
            teacher: &teacher,
            student_point: "conv".into(),
            teacher_point: "conv1".into(),
            regressor: r,
        };
        let xs = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
        let (loss, logits) = hint.loss(&student, &xs, &Tensor::zeros([3], (Kind::Int64, Device::Cpu)));
        assert_eq!(logits.size(), [3, 10]);
        loss.backward();
        let grad = |t: &Tensor| t.grad().defined() && t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0;
        let named = student.named();
        assert!(named.iter().filter(|(n, _)| n.starts_with("conv")).all(|(_, t)| grad(t)));
        // Only the layers up to the guided point learn from the hint.
        assert!(named.iter().filter(|(n, _)| n.starts_with("fc")).all(|(_, t)| !grad(t)));
        assert!(hint.parameters().unwrap().trainable_variables().iter().all(grad));
        assert!(teacher.named().iter().all(|(_, t)| !t.requires_grad()));
        // Mixed shapes (conv -> dense point): pooled per channel, a linear map.
        let lin = Regressor::new(&[4, 26, 26], &[32], Device::Cpu, 3);
        let (p, t) = lin.align(
            &Tensor::rand([2, 4, 26, 26], (Kind::Float, Device::Cpu)),
            &Tensor::rand([2, 32], (Kind::Float, Device::Cpu)),
        );
        assert_eq!((p.size(), t.size()), (vec![2, 32], vec![2, 32]));
    }

    #[test]
    fn similarity_loss_is_zero_for_the_same_relations_whatever_the_width() {
        let a = Tensor::rand([6, 5], (Kind::Float, Device::Cpu));
        // The same batch relations at another width and scale: a [5, 9] map that keeps
        // the Gram matrix up to a factor (orthonormal columns times 3).
        let (q, _) = Tensor::linalg_qr(&Tensor::randn([9, 5], (Kind::Float, Device::Cpu)), "reduced");
        let b = a.matmul(&q.tr()) * 3.0;
        assert!(similarity_loss(&a, &b).double_value(&[]) < 1e-8);
        let c = Tensor::rand([6, 9], (Kind::Float, Device::Cpu));
        assert!(similarity_loss(&a, &c).double_value(&[]) > 1e-4);
    }

    #[test]
    fn matches_torch_kl_div_batchmean() {
        let s = Tensor::randn([8, 10], (Kind::Float, Device::Cpu));
        let t = Tensor::randn([8, 10], (Kind::Float, Device::Cpu));
        let ours = soft_kl(&s, &t, 2.0).double_value(&[]);
        // kl_div(input=log q, target=log p, log_target) sums p*(log p - log q); mean over all
        // elements divides by 80, batchmean by 8.
        let theirs = (&s / 2.0)
            .log_softmax(-1, Kind::Float)
            .kl_div(&(&t / 2.0).log_softmax(-1, Kind::Float), tch::Reduction::Sum, true)
            .double_value(&[])
            / 8.0;
        assert!((ours - theirs).abs() < 1e-5, "{ours} vs {theirs}");
    }
}
