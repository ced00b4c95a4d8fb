//! Response-based knowledge distillation (Hinton et al.): the student learns from the
//! teacher's temperature-softened class probabilities as well as from the labels:
//!
//! `loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`
//!
//! The T^2 keeps the soft-target gradients at the scale of the hard-label ones. The
//! teacher only runs forward, under `no_grad`, in inference mode.

use slimbench_models::Model;
use slimbench_train::Objective;
use tch::{Kind, Tensor};

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

impl Objective for Distillation<'_> {
    fn loss(&mut self, student: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor) {
        let teacher_logits = tch::no_grad(|| self.teacher.forward_t(xs, false));
        let logits = student.forward_t(xs, true);
        let t = self.temperature;
        let soft = soft_kl(&logits, &teacher_logits, t) * (t * t);
        let hard = logits.cross_entropy_for_logits(ys);
        (soft * self.alpha + hard * (1.0 - self.alpha), logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn kl_is_zero_for_equal_logits_and_positive_otherwise() {
        let a = Tensor::randn([4, 10], (Kind::Float, Device::Cpu));
        assert!(soft_kl(&a, &a, 4.0).double_value(&[]).abs() < 1e-6);
        let b = Tensor::randn([4, 10], (Kind::Float, Device::Cpu));
        assert!(soft_kl(&a, &b, 4.0).double_value(&[]) > 0.0);
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
