"""Losses against numpy references and hand-computed cases (the official formulas)."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurossl.losses import (
    Centering,
    SpectralLossSchedule,
    dino_loss,
    effective_rank,
    high_pass_mask,
    jepa_loss,
    koleo_loss,
    layer_norm_targets,
    masked_pixel_loss,
    masked_token_distillation_loss,
    sinkhorn_knopp,
    nt_xent,
    per_dim_std,
    spectral_loss,
    variance_covariance_loss,
    vcr_total,
)

EPS = 1e-6


def numpy_spectral_loss(recon, target, cutoff=0.3, ddof=1):
    """The official formula written out in numpy for (B, D, H, W) arrays."""

    def standardise(x):
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        std = x.std(axis=(1, 2, 3), ddof=ddof, keepdims=True)
        return (x - mean) / (std + 1e-6)

    d, h, w = recon.shape[1:]
    fd, fh, fw = np.meshgrid(np.fft.fftfreq(d), np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.sqrt(fd**2 + fh**2 + fw**2)
    keep = radius / radius.max() >= cutoff
    mag_r = np.abs(np.fft.fftn(standardise(recon), axes=(1, 2, 3))) * keep
    mag_g = np.abs(np.fft.fftn(standardise(target), axes=(1, 2, 3))) * keep
    return np.mean((np.log1p(mag_r + EPS) - np.log1p(mag_g + EPS)) ** 2)


# -- spectral loss --------------------------------------------------------------------------


def test_high_pass_mask_known_values():
    mask = high_pass_mask((4, 4, 4), cutoff=0.3)
    # fftfreq(4) = [0, .25, -.5, -.25]; max |f| = sqrt(3) / 2. A single-axis .25 gives
    # .25 / .866 = .289 < .3 (dropped); -.5 gives .577 and (.25, .25, 0) gives .408 (kept).
    assert mask.shape == (4, 4, 4) and mask.dtype == torch.bool
    assert not mask[0, 0, 0] and not mask[1, 0, 0] and not mask[0, 0, 3] and not mask[0, 3, 0]
    assert mask[2, 0, 0] and mask[1, 1, 0] and mask[3, 3, 3]
    assert int(mask.sum()) == 64 - 7  # DC + the six single-axis +-.25 frequencies
    # 2 x 2 x 2: |f| / max|f| = sqrt(number of non-zero axes / 3) -> .577, .816, 1.
    small = high_pass_mask((2, 2, 2), cutoff=0.6)
    assert small.sum(dim=None) == 4 and small[1, 1, 0] and not small[1, 0, 0]


def test_spectral_loss_matches_numpy_reference():
    rng = np.random.default_rng(0)
    recon, target = rng.normal(size=(2, 4, 6, 5)), rng.normal(size=(2, 4, 6, 5)) * 3 + 1
    ours = spectral_loss(torch.from_numpy(recon), torch.from_numpy(target), cutoff=0.3)
    assert ours.ndim == 0
    assert float(ours) == pytest.approx(numpy_spectral_loss(recon, target, 0.3), rel=1e-10)
    ours_f32 = spectral_loss(torch.from_numpy(recon).float(), torch.from_numpy(target).float())
    assert float(ours_f32) == pytest.approx(numpy_spectral_loss(recon, target, 0.3), rel=1e-4)


@pytest.mark.parametrize("shape", [(2, 4, 6, 8), (1, 2, 5, 7, 6), (2, 3, 3, 1)])
def test_half_spectrum_spectral_loss_equals_the_full_fftn_formula_and_its_gradient(shape):
    # The loss runs on rfftn's half spectrum; value and gradient must be the full fftn formula's.
    def full(recon, target, cutoff=0.3, eps=1e-6):
        keep = high_pass_mask(recon.shape[-3:], cutoff)
        def mag(x):
            x = (x - x.mean(dim=(-3, -2, -1), keepdim=True)) / (x.std(dim=(-3, -2, -1), keepdim=True) + 1e-6)
            return torch.fft.fftn(x, dim=(-3, -2, -1)).abs() * keep
        sq = (torch.log1p(mag(recon) + eps) - torch.log1p(mag(target) + eps)) ** 2
        if sq.ndim == 4:
            return sq.mean()
        return sq.mean(dim=(0, 2, 3, 4)).mean()

    gen = torch.Generator().manual_seed(1)
    target = torch.randn(shape, dtype=torch.float64, generator=gen)
    recon = torch.randn(shape, dtype=torch.float64, generator=gen).requires_grad_()
    ours = spectral_loss(recon, target)
    (grad_ours,) = torch.autograd.grad(ours, recon)
    reference = full(recon, target)
    (grad_ref,) = torch.autograd.grad(reference, recon)
    assert float(ours.detach()) == pytest.approx(float(reference.detach()), rel=1e-12)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-9, atol=1e-12)


def test_spectral_loss_hand_computed_2x2x2():
    # Target: a single bright voxel. Mean 1/8, unbiased std sqrt(1/8); once centred, its DFT is
    # 1 at every non-DC frequency (0 at DC), so |F_gt| = 1 / s_g there.
    target = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    target[0, 0, 0, 0] = 1.0
    s_g = math.sqrt(1 / 8) + 1e-6
    # Recon: +1 / -1 alternating along depth. Mean 0, unbiased std sqrt(8/7); its DFT is 8 at
    # frequency (1, 0, 0) only.
    recon = torch.ones(1, 2, 2, 2, dtype=torch.float64)
    recon[0, 1] = -1.0
    s_r = math.sqrt(8 / 7) + 1e-6
    gt_term = math.log1p(1 / s_g + EPS)
    zero_term = math.log1p(EPS)
    # cutoff .3 keeps the 7 non-DC frequencies; (1, 0, 0) compares 8 / s_r with 1 / s_g, the
    # other six compare 0 with 1 / s_g; the mean is over all 8 elements (DC counts as 0).
    expected = ((math.log1p(8 / s_r + EPS) - gt_term) ** 2 + 6 * (zero_term - gt_term) ** 2) / 8
    assert float(spectral_loss(recon, target, cutoff=0.3)) == pytest.approx(expected, rel=1e-12)
    # cutoff .6 also drops the three single-axis frequencies, (1, 0, 0) among them.
    expected = 4 * (zero_term - gt_term) ** 2 / 8
    assert float(spectral_loss(recon, target, cutoff=0.6)) == pytest.approx(expected, rel=1e-12)


def test_spectral_loss_zero_for_identical_and_intensity_rescaled_inputs():
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    assert float(spectral_loss(x, x)) == 0.0
    # Standardisation makes it blind to a positive affine intensity change.
    assert float(spectral_loss(3.0 * x + 5.0, x)) == pytest.approx(0.0, abs=1e-9)
    assert float(spectral_loss(torch.randn_like(x), x)) > 0.01


def test_spectral_loss_uses_the_unbiased_std():
    rng = np.random.default_rng(1)
    recon, target = rng.normal(size=(1, 2, 3, 2)), rng.normal(size=(1, 2, 3, 2)) * 5
    ours = float(spectral_loss(torch.from_numpy(recon), torch.from_numpy(target)))
    unbiased = numpy_spectral_loss(recon, target, ddof=1)
    biased = numpy_spectral_loss(recon, target, ddof=0)
    assert ours == pytest.approx(unbiased, rel=1e-10)
    assert abs(unbiased - biased) > 1e-3 * unbiased  # the detail matters at this size
    assert ours != pytest.approx(biased, rel=1e-6)


def test_spectral_loss_channels_are_standardised_and_averaged_separately():
    recon = torch.randn(2, 2, 4, 6, 5, dtype=torch.float64)
    target = torch.randn(2, 2, 4, 6, 5, dtype=torch.float64)
    per_channel = [spectral_loss(recon[:, c], target[:, c]) for c in range(2)]
    assert float(spectral_loss(recon, target)) == pytest.approx(float(sum(per_channel) / 2), rel=1e-12)
    scaled = target.clone()
    scaled[:, 1] *= 100.0
    # Only the 1e-6 added to the std notices the scale: a shared standardisation would not.
    reference = float(spectral_loss(recon, target))
    assert float(spectral_loss(recon, scaled)) == pytest.approx(reference, rel=1e-6)


def test_spectral_loss_gradient_and_bad_shapes():
    recon = torch.randn(1, 4, 4, 4, requires_grad=True)
    spectral_loss(recon, torch.randn(1, 4, 4, 4)).backward()
    assert torch.isfinite(recon.grad).all() and recon.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shapes differ"):
        spectral_loss(torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, D, H, W\)"):
        spectral_loss(torch.zeros(4, 4, 4), torch.zeros(4, 4, 4))


# -- amortisation schedule ------------------------------------------------------------------


class Counter:
    """A spectral loss stand-in that records how often it is evaluated."""

    def __init__(self, value=2.0):
        self.calls = 0
        self.param = torch.tensor(value, requires_grad=True)

    def __call__(self):
        self.calls += 1
        return self.param * 1.0


def test_schedule_computes_every_kth_step_from_start_epoch():
    sched = SpectralLossSchedule(weight=0.01, every=4, start_epoch=2, warmup_epochs=4)
    fn = Counter()
    computed = []
    for step in range(30):
        epoch = step // 10  # 10 steps per epoch
        _, info = sched(step, epoch, fn)
        if info["computed"]:
            computed.append(step)
        assert info["computed"] == sched.is_compute_step(step, epoch)
    assert computed == [20, 24, 28]
    assert fn.calls == 3


def test_schedule_weight_ramp():
    sched = SpectralLossSchedule(weight=0.01, every=25, start_epoch=10, warmup_epochs=20)
    assert sched.weight_at(9) == 0.0
    assert sched.weight_at(10) == pytest.approx(0.01 / 20)
    assert sched.weight_at(19) == pytest.approx(0.01 * 10 / 20)
    assert sched.weight_at(29) == pytest.approx(0.01)
    assert sched.weight_at(200) == pytest.approx(0.01)
    assert SpectralLossSchedule(weight=0.5, start_epoch=0, warmup_epochs=0).weight_at(0) == 0.5


# Official app/mae/train.py, on every step:
#   "loss = (loss_mae + reg_coeff * loss_reg + (spectral_coeff_eff / spec_loss_every_n_iter) * loss_spec) / accumulation_steps"
# where, between compute steps, "loss_spec = torch.tensor(prev_loss_spec_val, device=device)".
OFFICIAL_TERM = "(spectral_coeff_eff / spec_loss_every_n_iter) * loss_spec"


def test_schedule_compute_step_term_is_weight_over_every_times_loss_with_gradient():
    sched = SpectralLossSchedule(weight=0.01, every=25, start_epoch=0, warmup_epochs=0)
    fn = Counter(2.0)
    term, info = sched(0, 0, fn)
    assert info == {"computed": True, "dropped": False, "value": 2.0, "weight": 0.01 / 25}
    assert term.requires_grad and float(term.detach()) == pytest.approx(0.01 / 25 * 2.0)
    term.backward()
    # d term / d loss_spec = spectral_coeff_eff / spec_loss_every_n_iter (was 25x that)
    assert float(fn.param.grad) == pytest.approx(0.01 / 25), OFFICIAL_TERM


def test_schedule_cached_value_carries_no_gradient():
    sched = SpectralLossSchedule(weight=0.1, every=3, start_epoch=0, warmup_epochs=0)
    fn = Counter(2.0)
    sched(0, 0, fn)
    for step in (1, 2):
        term, info = sched(step, 0, fn)
        assert not info["computed"] and info["value"] == 2.0
        assert not term.requires_grad and float(term) == pytest.approx(0.1 / 3 * 2.0), OFFICIAL_TERM
    assert fn.calls == 1


def test_schedule_between_steps_keeps_the_weight_of_the_last_compute_step():
    # official: spectral_coeff_eff is refreshed only when "global_step % spec_loss_every_n_iter == 0"
    sched = SpectralLossSchedule(weight=0.01, every=4, start_epoch=1, warmup_epochs=2)
    sched(4, 1, Counter(1.0))  # epoch 1: weight 0.01 * 1/2
    term, info = sched(6, 2, Counter())  # epoch 2 (weight 0.01), but no compute step yet
    assert info["weight"] == pytest.approx(0.005 / 4) and float(term) == pytest.approx(0.005 / 4)
    term, info = sched(8, 2, Counter(1.0))
    assert info["weight"] == pytest.approx(0.01 / 4)


def test_schedule_before_first_compute_and_the_plain_variant():
    sched = SpectralLossSchedule(weight=0.1, every=5, start_epoch=0, warmup_epochs=0)
    term, info = sched(3, 0, Counter())  # nothing cached yet
    assert float(term) == 0.0 and math.isnan(info["value"])
    plain = SpectralLossSchedule(weight=0.1, every=1, start_epoch=0, warmup_epochs=0)
    fn = Counter(2.0)
    terms = [plain(step, 0, fn)[0] for step in range(4)]
    assert fn.calls == 4 and all(t.requires_grad for t in terms)
    assert float(terms[0].detach()) == pytest.approx(0.1 * 2.0)  # every=1: w * loss, every step


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 5e3])
def test_schedule_drops_non_finite_or_huge_values_and_resets_the_cache(bad):
    # official: "if torch.isnan(loss_spec) or torch.isinf(loss_spec) or loss_spec > 1e3:
    #     loss_spec = torch.tensor(0.0, device=device)" ... "prev_loss_spec_val = loss_spec.item()"
    sched = SpectralLossSchedule(weight=0.1, every=2, start_epoch=0, warmup_epochs=0)
    sched(0, 0, Counter(1.5))
    with pytest.warns(RuntimeWarning, match="dropped"):
        term, info = sched(2, 0, Counter(bad))
    assert float(term) == 0.0 and info["dropped"] and not info["computed"]
    term, info = sched(3, 0, Counter())
    assert float(term) == 0.0 and info["value"] == 0.0  # the cache was reset to 0


def test_schedule_state_dict_round_trip():
    sched = SpectralLossSchedule(weight=0.1, every=4, start_epoch=0, warmup_epochs=0)
    sched(0, 0, Counter(3.0))
    restored = SpectralLossSchedule(weight=0.1, every=4, start_epoch=0, warmup_epochs=0)
    restored.load_state_dict(sched.state_dict())
    assert restored.state_dict() == {"cached": 3.0, "cached_weight": pytest.approx(0.025)}
    assert float(restored(1, 0, Counter())[0]) == pytest.approx(0.1 / 4 * 3.0)
    empty = SpectralLossSchedule()
    empty.load_state_dict({"cached": None})
    assert empty.state_dict() == {"cached": None, "cached_weight": 0.0}


# -- pixel and JEPA losses ------------------------------------------------------------------


def test_masked_pixel_loss_forms_agree_with_hand_value():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, True, False]])
    # p = 2: mean over masked patches of mean squared error, / 2 -> ((1 + 1) / 2 + (4 + 0) / 2) / 2 / 2
    assert float(masked_pixel_loss(pred, target, mask, p=2)) == pytest.approx(0.75)
    idx = torch.tensor([[0, 1]])
    assert float(masked_pixel_loss(pred, target, idx, p=2)) == pytest.approx(0.75)
    masked_only = pred[:, :2]  # a decoder that outputs the masked tokens only
    assert float(masked_pixel_loss(masked_only, target, idx, p=2)) == pytest.approx(0.75)
    assert float(masked_pixel_loss(pred, target, mask, p=1)) == pytest.approx((1 + 1) / 2)
    assert float(masked_pixel_loss(pred, target, p=2)) == pytest.approx((1 + 1 + 4 + 25 + 25) / 6 / 2)


def test_masked_pixel_loss_norm_pix():
    target = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]])
    mask = torch.tensor([[True, False]])
    # Patch (1, 3): mean 2, unbiased var 2 -> normalised (-1, 1) / sqrt(2 + 1e-6).
    expected = torch.tensor([-1.0, 1.0]) / math.sqrt(2 + 1e-6)
    pred = torch.zeros(1, 2, 2)
    pred[0, 0] = expected
    assert float(masked_pixel_loss(pred, target, mask, norm_pix=True)) == pytest.approx(0.0, abs=1e-12)
    pred[0, 0] = torch.tensor([-1.0, 1.0]) / math.sqrt(1 + 1e-6)  # biased variance would give this
    assert float(masked_pixel_loss(pred, target, mask, norm_pix=True)) > 0.04
    assert float(masked_pixel_loss(pred, target, mask, norm_pix=False)) > 1.0


def test_jepa_loss_and_layer_norm_targets():
    h = torch.randn(2, 5, 8) * 4 + 3
    normed = layer_norm_targets(h)
    assert torch.allclose(normed.mean(-1), torch.zeros(2, 5), atol=1e-5)
    assert torch.allclose(normed.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3)
    pred = torch.zeros(1, 1, 2, requires_grad=True)
    target = torch.tensor([[[1.0, -3.0]]], requires_grad=True)
    assert float(jepa_loss(pred, target, p=1).detach()) == pytest.approx(2.0)
    loss = jepa_loss(pred, target, p=2)
    assert float(loss.detach()) == pytest.approx((1 + 9) / 2 / 2)
    loss.backward()
    assert target.grad is None and pred.grad is not None  # the teacher gets no gradient


# -- variance-covariance --------------------------------------------------------------------


def test_variance_covariance_hand_computed():
    x = torch.tensor([[[0.0, 0.0]], [[1.0, 2.0]]])  # B=2, N=1, D=2
    var, cov = variance_covariance_loss(x)
    # Unbiased var over batch: .5 and 2 -> std sqrt(.5001), sqrt(2.0001); only the first < 1.
    assert float(var) == pytest.approx((1 - math.sqrt(0.5001)) / 2, rel=1e-6)
    # Centred samples (-.5, -1), (.5, 1): C = [[.5, 1], [1, 2]] -> (1^2 + 1^2) / 2.
    assert float(cov) == pytest.approx(1.0, rel=1e-6)
    assert float(vcr_total(torch.tensor(0.5), var, cov, alpha=1.0, beta=0.1, c=2.0)) == pytest.approx(
        0.5 + 2 * (float(var) + 0.1 * float(cov)), rel=1e-6
    )


def test_variance_covariance_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 5)) * rng.uniform(0.2, 2.0, size=5)
    var, cov = variance_covariance_loss(torch.from_numpy(x))
    std = np.sqrt(x.var(axis=0, ddof=1) + 1e-4)
    samples = x.reshape(12, 5)
    c = np.cov(samples, rowvar=False)  # centred, / (B N - 1)
    assert float(var) == pytest.approx(np.maximum(0, 1 - std).mean(), rel=1e-10)
    assert float(cov) == pytest.approx(((c - np.diag(np.diag(c))) ** 2).sum() / 5, rel=1e-10)
    with pytest.raises(ValueError, match="B >= 2"):
        variance_covariance_loss(torch.randn(1, 3, 5))


# -- NT-Xent --------------------------------------------------------------------------------


def manual_nt_xent(z1, z2, t):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, b = z.shape[0], z1.shape[0]
    total = 0.0
    for i in range(n):
        positive = (i + b) % n
        sims = {j: float(z[i] @ z[j]) / t for j in range(n) if j != i}
        total += -math.log(math.exp(sims[positive]) / sum(math.exp(s) for s in sims.values()))
    return total / n


def test_nt_xent_hand_computed_and_reference():
    e = torch.eye(2)
    # Views identical, T = 1: each anchor sees its positive at cos 1 and two negatives at cos 0.
    assert float(nt_xent(e, e, temperature=1.0)) == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)
    z1, z2 = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    assert float(nt_xent(z1, z2, 0.1)) == pytest.approx(manual_nt_xent(z1, z2, 0.1), rel=1e-5)
    assert float(nt_xent(3 * z1, z2, 0.1)) == pytest.approx(float(nt_xent(z1, z2, 0.1)), rel=1e-5)
    with pytest.raises(ValueError, match="B >= 2"):
        nt_xent(torch.randn(1, 4), torch.randn(1, 4))


# -- DINO / iBOT ----------------------------------------------------------------------------


def test_dino_loss_known_values():
    center = torch.tensor([[0.3, -0.2]])
    # Teacher (t - c) / .04 = (ln 3, 0) -> q = (3/4, 1/4); student s / .1 = (ln 3, 0) -> p = q.
    teacher = center + torch.tensor([[0.04 * math.log(3), 0.0]])
    matching = torch.tensor([[0.1 * math.log(3), 0.0]])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    weird = torch.tensor([[50.0, -50.0]])  # student view 0 pairs only with teacher view 0: skipped
    loss = dino_loss([weird, matching], [teacher], center)
    assert float(loss) == pytest.approx(entropy, rel=1e-5)
    uniform = torch.zeros(1, 2)  # p = (1/2, 1/2): cross-entropy log 2
    assert float(dino_loss([weird, uniform], [teacher], center)) == pytest.approx(math.log(2), rel=1e-5)


def test_dino_loss_averages_all_cross_view_pairs():
    torch.manual_seed(0)
    teachers = [torch.randn(3, 4, requires_grad=True) for _ in range(2)]
    students = [torch.randn(3, 4, requires_grad=True) for _ in range(3)]
    center = torch.randn(4)

    def ce(s, t):
        q = F.softmax((t - center) / 0.04, dim=-1)
        return -(q * F.log_softmax(s / 0.1, dim=-1)).sum(-1).mean()

    pairs = [(i, j) for i in range(2) for j in range(3) if i != j]
    with torch.no_grad():
        expected = sum(ce(students[j], teachers[i]) for i, j in pairs) / len(pairs)
    loss = dino_loss(students, teachers, center)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    loss.backward()
    assert all(t.grad is None for t in teachers)  # stop-gradient on the teacher
    assert all(s.grad is not None for s in students)


def test_centering_update_known_value_and_state():
    centering = Centering(2, momentum=0.9)
    centering.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # mean (2, 3)
    assert torch.allclose(centering.center, torch.tensor([[0.2, 0.3]]))
    centering.update([torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 2.0]])])  # mean (1, 1)
    assert torch.allclose(centering.center, torch.tensor([[0.28, 0.37]]))
    assert torch.allclose(centering(torch.ones(1, 2)), torch.tensor([[0.72, 0.63]]))
    restored = Centering(2)
    restored.load_state_dict(centering.state_dict())
    assert torch.equal(restored.center, centering.center)


def test_masked_token_distillation_averages_masked_tokens_per_volume():
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    center = torch.randn(4)
    mask = torch.tensor([[True, False, True], [False, True, False]])
    q = F.softmax((teacher - center) / 0.04, dim=-1)
    ce = -(q * F.log_softmax(student / 0.1, dim=-1)).sum(-1)
    expected = ((ce[0, 0] + ce[0, 2]) / 2 + ce[1, 1]) / 2
    loss = masked_token_distillation_loss(student, teacher, mask, center)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    changed = student.clone()
    changed[0, 1] += 10.0  # an unmasked token does not count
    unchanged = masked_token_distillation_loss(changed, teacher, mask, center)
    assert float(unchanged) == pytest.approx(float(loss))


def test_sinkhorn_knopp_balances_prototypes_and_keeps_samples_specific():
    torch.manual_seed(3)
    # Near-identical teacher outputs with one common dominant prototype: a centred softmax
    # would need the running center to remove it; Sinkhorn-Knopp balances within the batch.
    logits = 0.01 * torch.randn(16, 8)
    logits[:, 0] += 1.0
    q = sinkhorn_knopp(logits, teacher_temp=0.04, iterations=50)
    assert torch.allclose(q.sum(dim=1), torch.ones(16), atol=1e-6)  # a distribution per sample
    assert torch.allclose(q.sum(dim=0), torch.full((8,), 2.0), atol=1e-3)  # S / K per prototype
    plain = F.softmax(logits / 0.04, dim=1)
    assert float(plain[:, 0].mean()) > 0.99 and float(q[:, 0].mean()) < 0.2
    # Equivariant under a permutation of the samples; no gradient flows to the teacher.
    order = torch.randperm(16)
    torch.testing.assert_close(sinkhorn_knopp(logits[order], 0.04, iterations=50), q[order])
    assert not sinkhorn_knopp(logits.requires_grad_(), 0.04).requires_grad


def test_dino_and_mim_losses_with_sinkhorn_targets():
    torch.manual_seed(4)
    teachers = [torch.randn(3, 5), torch.randn(3, 5)]
    students = [torch.randn(3, 5, requires_grad=True) for _ in range(3)]
    q = sinkhorn_knopp(torch.cat(teachers), 0.04).chunk(2)  # the teacher views balanced together

    def ce(s, t):
        return -(t * F.log_softmax(s / 0.1, dim=-1)).sum(-1).mean()

    pairs = [(i, j) for i in range(2) for j in range(3) if i != j]
    expected = sum(float(ce(students[j], q[i]).detach()) for i, j in pairs) / len(pairs)
    assert float(dino_loss(students, teachers, None).detach()) == pytest.approx(expected, rel=1e-5)

    student, teacher = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    mask = torch.tensor([[True, True, False, False], [False, True, True, True]])
    q_masked = sinkhorn_knopp(teacher[mask], 0.04)  # only the masked tokens are balanced
    per_token = -(q_masked * F.log_softmax(student[mask] / 0.1, dim=-1)).sum(-1)
    expected = (per_token[:2].mean() + per_token[2:].mean()) / 2
    loss = masked_token_distillation_loss(student, teacher, mask, None)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


# -- collapse monitor -----------------------------------------------------------------------


def test_effective_rank_and_per_dim_std():
    assert effective_rank(torch.eye(5)) == pytest.approx(5.0)
    assert effective_rank(torch.outer(torch.randn(6), torch.randn(4))) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(torch.diag(torch.tensor([2.0, 2.0, 0.0, 0.0]))) == pytest.approx(2.0)
    assert effective_rank(torch.zeros(3, 3)) == 0.0
    std = per_dim_std(torch.tensor([[[0.0, 1.0]], [[2.0, 1.0]]]))
    assert torch.allclose(std, torch.tensor([math.sqrt(2.0), 0.0]))


def test_centred_rank_ignores_a_component_every_token_shares():
    # tokens spread over 4 directions around a large shared offset: the uncentred rank sees
    # the offset (near 1), the centred one the 4 directions
    torch.manual_seed(0)
    spread = torch.cat([torch.eye(4), -torch.eye(4)]).repeat(8, 1) @ torch.linalg.qr(torch.randn(16, 4))[0].T
    offset = 100.0 * torch.randn(16)
    z = spread + offset
    assert effective_rank(z) < 1.2
    assert effective_rank(z, centre=True) == pytest.approx(4.0, abs=1e-6)
    assert effective_rank(z, centre=True) == pytest.approx(effective_rank(spread, centre=True), abs=1e-9)
    assert effective_rank(offset.expand(5, 16), centre=True) == 0.0  # identical tokens: nothing left


def test_no_warning_on_normal_schedule_use():
    sched = SpectralLossSchedule(weight=0.1, every=2, start_epoch=0, warmup_epochs=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(4):
            sched(step, 0, Counter())


# ---------------------------------------------------------------- KoLeo


def test_koleo_of_orthogonal_rows_is_minus_log_sqrt2():
    # Every pair of orthonormal rows is sqrt(2) apart, whatever their scale (rows are normalised).
    x = torch.eye(4) * torch.tensor([[1.0], [2.0], [0.5], [3.0]])
    assert float(koleo_loss(x)) == pytest.approx(-math.log(math.sqrt(2.0)), abs=1e-6)


def test_koleo_hand_computed_nearest_neighbours():
    # Unit vectors at 0, 60 and 180 degrees: nearest-neighbour distances 1, 1 and sqrt(3).
    angles = torch.tensor([0.0, math.pi / 3, math.pi])
    x = torch.stack([angles.cos(), angles.sin()], dim=1)
    expected = -(0.0 + 0.0 + math.log(math.sqrt(3.0))) / 3
    assert float(koleo_loss(x)) == pytest.approx(expected, abs=1e-6)


def test_koleo_gradient_spreads_a_tight_cluster():
    x = (torch.ones(6, 8) + 0.01 * torch.randn(6, 8, generator=torch.Generator().manual_seed(0)))
    x.requires_grad_(True)
    loss = koleo_loss(x)
    loss.backward()
    before = loss.item()
    with torch.no_grad():
        after = float(koleo_loss(x - 0.01 * x.grad / x.grad.norm()))
    assert after < before
    duplicates = torch.ones(3, 4)
    assert float(koleo_loss(duplicates)) == pytest.approx(-math.log(1e-8), rel=1e-3)


def test_koleo_needs_two_rows():
    with pytest.raises(ValueError, match="N >= 2"):
        koleo_loss(torch.randn(1, 8))
