"""Every metric of deepij validate against a computation that is not deepij's: a hand-worked 3x3 example
written out here, scikit-image, scipy, and Keras's own losses (the definitions deepImageJ's Validate names),
in 2-D and 3-D."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage, stats
from scipy.spatial import distance
from skimage import filters
from skimage import metrics as skmetrics

from deepij.errors import ArgumentError, InputError
from deepij.trust import label_metrics as lm
from deepij.trust import metrics as m

# --- a hand-worked pair: s = 0..8, g = s + d ----------------------------------------------------------------

S = np.arange(9, dtype=float).reshape(3, 3)
D = np.array([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 1.0]])
G = S + D
# sum |d| = 4, sum d^2 = 6, sum s^2 = 0+1+4+...+64 = 204, max(s) = 8, N = 9


def test_distances_by_hand():
    assert m.norm_l1(S, G) == 4.0
    assert m.norm_l2(S, G) == pytest.approx(math.sqrt(6))
    assert m.rmse(S, G) == pytest.approx(math.sqrt(6 / 9))
    assert m.mae(S, G) == pytest.approx(4 / 9)


def test_signal_to_noise_by_hand():
    assert m.snr(S, G) == pytest.approx(10 * math.log10(204 / 6))
    assert m.psnr(S, G) == pytest.approx(10 * math.log10(64 / (6 / 9)))
    assert m.psnr(S, G, data_range=255) == pytest.approx(10 * math.log10(255**2 / (6 / 9)))
    assert m.snr(S, S) == math.inf and m.psnr(S, S) == math.inf


@pytest.fixture(scope="module")
def noisy_pair():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:48, :40]
    truth = 100 + 50 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
    return truth, truth + rng.normal(0, 6, truth.shape)


@pytest.fixture(scope="module")
def noisy_stack():
    rng = np.random.default_rng(4)
    zz, yy, xx = np.mgrid[:14, :24, :20]
    truth = 10 + 5 * np.sin(zz / 3.0 + yy / 4.0) * np.cos(xx / 5.0)
    return truth, truth + rng.normal(0, 1, truth.shape)


def test_rmse_and_psnr_agree_with_scikit_image(noisy_pair, noisy_stack):
    for truth, test in (noisy_pair, noisy_stack):
        assert m.rmse(truth, test) == pytest.approx(math.sqrt(skmetrics.mean_squared_error(truth, test)))
        assert m.psnr(truth, test) == pytest.approx(
            skmetrics.peak_signal_noise_ratio(truth, test, data_range=truth.max()))
        assert m.psnr(truth, test, data_range=300.0) == pytest.approx(
            skmetrics.peak_signal_noise_ratio(truth, test, data_range=300.0))


def test_regress_snr_against_scipy_linear_regression(noisy_pair):
    truth, test = noisy_pair
    distorted = 0.25 * test - 7.0  # right up to a gain and an offset: SNR punishes it, RegressSNR does not
    fit = stats.linregress(distorted.ravel(), truth.ravel())
    residual = truth - (fit.slope * distorted + fit.intercept)
    expected = 10 * math.log10(np.mean(truth**2) / np.mean(residual**2))
    assert m.regress_snr(truth, distorted) == pytest.approx(expected, rel=1e-9)
    assert m.regress_snr(truth, distorted) == pytest.approx(m.regress_snr(truth, test), rel=1e-9)
    assert m.snr(truth, distorted) + 15 < m.regress_snr(truth, distorted)
    assert m.regress_snr(S, 3 * S + 1) == math.inf


# --- SSIM: Wang et al. 2004 written out here with scipy's Gaussian filter -----------------------------------


def wang_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """Mean SSIM with an 11-wide Gaussian window (sigma 1.5), population statistics, edges cropped by the
    window's radius: the standard definition, independent of deepij's call to scikit-image."""
    sigma, truncate, radius = 1.5, 3.5, 5

    def blur(a):
        return ndimage.gaussian_filter(a, sigma, truncate=truncate, mode="reflect")

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    inner = tuple(slice(radius, -radius) for _ in x.shape)
    return float(ssim_map[inner].mean())


def test_ssim_is_wangs_gaussian_ssim_in_2d(noisy_pair):
    truth, test = noisy_pair
    spread = truth.max() - truth.min()
    assert m.ssim(truth, test) == pytest.approx(wang_ssim(truth, test, spread), abs=1e-9)
    assert m.ssim(truth, test, data_range=255) == pytest.approx(wang_ssim(truth, test, 255), abs=1e-9)
    assert m.ssim(truth, test) == pytest.approx(skmetrics.structural_similarity(
        truth, test, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=spread))
    assert m.ssim(truth, truth) == pytest.approx(1.0)


def test_ssim_in_3d(noisy_stack):
    truth, test = noisy_stack
    spread = truth.max() - truth.min()
    assert m.ssim(truth, test) == pytest.approx(wang_ssim(truth, test, spread), abs=1e-9)
    # a thin stack (fewer planes than the window) is measured plane by plane
    thin_truth, thin_test = truth[:4], test[:4]
    thin_spread = thin_truth.max() - thin_truth.min()
    planes = [wang_ssim(a, b, thin_spread) for a, b in zip(thin_truth, thin_test, strict=True)]
    assert m.ssim(thin_truth, thin_test) == pytest.approx(np.mean(planes), abs=1e-9)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(InputError, match="at least 11 pixels"):
        m.ssim(S, G)


# --- LAP against scikit-image's difference of Gaussians -----------------------------------------------------


def test_lap_is_the_distance_of_dog_pyramids(noisy_pair, noisy_stack):
    for truth, test in (noisy_pair, noisy_stack):
        expected = 0.0
        for sigma in (0.5, 1.0, 2.0, 4.0):
            low, high = sigma, sigma * math.sqrt(2)
            dog_test = filters.difference_of_gaussians(test, low, high, mode="nearest", truncate=4.0)
            dog_truth = filters.difference_of_gaussians(truth, low, high, mode="nearest", truncate=4.0)
            expected += np.abs(dog_test - dog_truth).sum()
        assert m.lap(truth, test) == pytest.approx(expected, rel=1e-9)
    assert m.lap(S, S + 5) == pytest.approx(0.0, abs=1e-9)


# --- losses on [0, 1]: by hand, and against Keras -----------------------------------------------------------

P = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # reference: a mask
Q = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.1], [0.6, 0.9, 0.3]])  # test: probabilities
LOG_Q_ON = math.log(0.9) + math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.9)  # log q where p = 1


def test_losses_by_hand():
    # log(1 - q) where p = 0
    log_1_minus_q_off = math.log(0.9) + math.log(0.8) + math.log(0.9) + math.log(0.7)
    assert m.bce(P, Q) == pytest.approx(-(LOG_Q_ON + log_1_minus_q_off) / 9)
    # hinge: labels +1 where p = 1 (1 - q: .1 .2 .3 .4 .1), -1 where p = 0 (1 + q: 1.1 1.2 1.1 1.3)
    assert m.hinge(P, Q) == pytest.approx(5.8 / 9)
    assert m.square_hinge(P, Q) == pytest.approx((0.31 + 5.55) / 9)
    # categorical hinge: mean(p q) = 3.9 / 9, max((1 - p) q) = 0.3
    assert m.categorical_hinge(P, Q) == pytest.approx(0.3 - 3.9 / 9 + 1)
    assert m.kld(P, Q) == pytest.approx(-LOG_Q_ON, abs=1e-5)  # p = 0 pixels weigh 1e-7 log(1e-7 / q)
    assert m.poisson(P, Q) == pytest.approx((4.6 - LOG_Q_ON) / 9, abs=1e-6)
    assert m.log_cosh(P, Q) == pytest.approx(np.mean([math.log(math.cosh(x)) for x in (Q - P).ravel()]))
    pixels = zip(S.ravel(), G.ravel(), strict=True)
    squared_log_errors = [(math.log(1 + g) - math.log(1 + s)) ** 2 for s, g in pixels]
    assert m.msle(S, G) == pytest.approx(np.mean(squared_log_errors))


def test_mape_by_hand_with_zero_references():
    # |g - s| / |s|: 1/1 = 1, then 2/4... s = 0: 0 % when g = 0, 100 % otherwise (deepImageJ's rule)
    s = np.array([[1.0, 4.0, 0.0], [0.0, 2.0, 10.0], [5.0, 5.0, 5.0]])
    g = np.array([[2.0, 2.0, 0.0], [3.0, 2.0, 11.0], [5.0, 4.0, 6.0]])
    assert m.mape(s, g) == pytest.approx(100 * (1 + 0.5 + 0 + 1 + 0 + 0.1 + 0 + 0.2 + 0.2) / 9)


@pytest.fixture(scope="module")
def keras_losses():
    keras = pytest.importorskip("keras")
    return keras.losses


@pytest.mark.parametrize("shape", [(20, 24), (5, 12, 10)], ids=["2d", "3d"])
def test_losses_agree_with_keras(keras_losses, shape):
    rng = np.random.default_rng(11)
    mask = (rng.random(shape) > 0.6).astype(np.float64)
    probability = np.clip(mask * 0.7 + rng.random(shape) * 0.3, 0.0, 1.0)
    intensity = rng.gamma(2.0, 3.0, shape)
    estimate = intensity + rng.normal(0, 1.5, shape).clip(-1, None)

    def keras_value(loss, reference, test):
        return float(np.asarray(loss(reference.ravel()[None].astype(np.float32),
                                     test.ravel()[None].astype(np.float32)))[0])

    checks = [
        (m.bce, keras_losses.binary_crossentropy, mask, probability),
        (m.kld, keras_losses.kl_divergence, probability, np.clip(probability + 0.05, 0, 1)),
        (m.hinge, keras_losses.hinge, mask, probability),
        (m.square_hinge, keras_losses.squared_hinge, mask, probability),
        (m.log_cosh, keras_losses.log_cosh, intensity, estimate),
        (m.poisson, keras_losses.poisson, intensity, np.abs(estimate)),
        (m.msle, keras_losses.mean_squared_logarithmic_error, intensity, np.abs(estimate)),
        (m.mape, keras_losses.mean_absolute_percentage_error, intensity + 1.0, estimate + 1.0),
    ]
    for ours, theirs, reference, test in checks:
        assert ours(reference, test) == pytest.approx(keras_value(theirs, reference, test), rel=2e-4), ours


def test_domains_are_refused_and_reported_as_nan():
    with pytest.raises(InputError, match=r"BCE: test values must be in \[0, 1\], found 1.2 to 2"):
        m.bce(P, Q + 1.1)
    with pytest.raises(InputError, match="MSLE: values must be above -1"):
        m.msle(S, S - 5)
    values, notes = m.image_metrics(S, G, ["RMSE", "KLD", "SSIM"])
    assert values["RMSE"] == pytest.approx(math.sqrt(6 / 9))
    assert math.isnan(values["KLD"]) and math.isnan(values["SSIM"])
    assert [n.split(":")[0] for n in notes] == ["KLD", "SSIM"]


def test_shapes_and_names_are_checked():
    with pytest.raises(InputError, match=r"shape \(3, 2\) differs from the reference's \(3, 3\)"):
        m.rmse(S, G[:, :2])
    with pytest.raises(ArgumentError, match="unknown image metric FOO"):
        m.image_metrics(S, G, ["FOO"])
    with pytest.raises(ArgumentError, match="data_range"):
        m.psnr(S, G, data_range=-1)


# --- label images -------------------------------------------------------------------------------------------

R = np.array([[1, 1, 0], [2, 2, 2], [0, 0, 3]])
T = np.array([[1, 0, 0], [2, 2, 0], [3, 3, 3]])
# label 1: |R| 2, |T| 1, both 1 -> Dice 2/3, Jaccard 1/2; label 2: 3, 2, 2 -> 4/5, 2/3;
# label 3: 1, 3, 1 -> 1/2, 1/3


def test_dice_and_jaccard_by_hand():
    table = lm.label_overlap(R, T)
    assert table["label"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(table["Dice"], [2 / 3, 4 / 5, 1 / 2])
    np.testing.assert_allclose(table["Jaccard"], [1 / 2, 2 / 3, 1 / 3])
    scores = lm.overlap_scores(R, T)
    # global: intersections 1 + 2 + 1 = 4 over sizes 3 + 5 + 4 = 12; union 12 - 4 = 8
    assert scores["Dice"] == pytest.approx(8 / 12)
    assert scores["Jaccard"] == pytest.approx(4 / 8)
    assert scores["Dice_mean"] == pytest.approx((2 / 3 + 4 / 5 + 1 / 2) / 3)
    assert scores["Jaccard_mean"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 3) / 3)


def test_dice_and_jaccard_agree_with_scipy_in_3d():
    rng = np.random.default_rng(5)
    reference = ndimage.label(ndimage.gaussian_filter(rng.random((10, 30, 30)), 2) > 0.5)[0] % 4
    test = np.roll(reference, 2, axis=2)
    table = lm.label_overlap(reference, test).set_index("label")
    assert len(table) >= 2
    for label, row in table.iterrows():
        a, b = (reference == label).ravel(), (test == label).ravel()
        assert row["Dice"] == pytest.approx(1 - distance.dice(a, b))
        assert row["Jaccard"] == pytest.approx(1 - distance.jaccard(a, b))
    foreground = lm.overlap_scores(reference > 0, test > 0)
    expected = 1 - distance.dice((reference > 0).ravel(), (test > 0).ravel())
    assert foreground["Dice"] == pytest.approx(expected)
    assert foreground["Dice_mean"] == pytest.approx(expected)


def test_matched_objects_by_hand():
    # objects 1 (IoU 1/2 with test 1), 2 (2/3 with test 2), 3 (1/3 with test 3): two matches at 0.5
    scores = lm.match_objects(R, T)
    assert (scores["TP"], scores["FP"], scores["FN"]) == (2, 1, 1)
    assert scores["Precision"] == pytest.approx(2 / 3) and scores["Recall"] == pytest.approx(2 / 3)
    assert scores["F1"] == pytest.approx(4 / 6) and scores["Accuracy"] == pytest.approx(2 / 4)
    assert scores["Mean_matched_IoU"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert lm.match_objects(R, T, iou_threshold=0.3)["TP"] == 3
    assert lm.match_objects(R, T, iou_threshold=0.9)["TP"] == 0


def test_matching_is_the_hungarian_assignment_not_greedy():
    # pixels (reference, test): 6 x (A, X), 4 x (A, Y), 4 x (B, X), 2 x (B, 0), 2 x (0, Y)
    # |A| = 10, |B| = 6, |X| = 10, |Y| = 6:
    # IoU(A, X) = 6/14, IoU(A, Y) = 4/12, IoU(B, X) = 4/12, IoU(B, Y) = 0.
    # At 0.3 taking the best pair first (A, X) leaves B and Y without partners: one match; the assignment
    # A-Y, B-X makes two.
    reference = np.array([[1] * 10 + [2] * 6 + [0] * 2])
    test = np.array([[5] * 6 + [7] * 4 + [5] * 4 + [0] * 2 + [7] * 2])
    scores = lm.match_objects(reference, test, iou_threshold=0.3)
    assert (scores["TP"], scores["FP"], scores["FN"]) == (2, 0, 0)
    assert scores["Mean_matched_IoU"] == pytest.approx(1 / 3)
    assert lm.match_objects(reference, test, iou_threshold=0.4)["TP"] == 1


def test_matching_in_3d_with_large_label_ids():
    reference = np.zeros((8, 16, 16), np.int64)
    test = np.zeros_like(reference)
    reference[1:5, 2:8, 2:8] = 2**40  # 144 voxels
    test[2:6, 2:8, 2:8] = 9  # 144 voxels, 108 shared: IoU 108 / 180
    reference[5:8, 10:14, 10:14] = 3
    scores = lm.match_objects(reference, test)
    assert (scores["N_reference"], scores["N_test"], scores["TP"], scores["FN"]) == (2, 1, 1, 1)
    assert scores["Mean_matched_IoU"] == pytest.approx(108 / 180)


def test_empty_label_images():
    empty = np.zeros((4, 4), int)
    assert math.isnan(lm.overlap_scores(empty, empty)["Dice"])
    scores = lm.match_objects(empty, empty)
    assert (scores["TP"], scores["Precision"], scores["F1"]) == (0, 0.0, 0.0)


def test_labels_must_be_whole_non_negative_numbers():
    assert lm.as_labels(np.array([[0.0, 3.0]]), "test").tolist() == [[0, 3]]
    with pytest.raises(InputError, match=r"test: a label image must hold whole numbers, found 0\.25"):
        lm.label_overlap(R, T * 0.25)
    with pytest.raises(InputError, match="negative labels"):
        lm.match_objects(-R, T)
    with pytest.raises(ArgumentError, match="iou_threshold"):
        lm.match_objects(R, T, iou_threshold=0)
