"""Explain tools on a CNN trained in the suite on five synthetic classes (``tests/shapes.py``).

Each test names the one-line bug it exists to catch; numbers stated in the README come from here.
"""

import pytest
import torch

import dream_core as dc
from shapes import CLASSES, SIZE, discs, pictures

HORIZONTAL, VERTICAL, CHECKERS, DISC, PLAIN = range(5)


def held_out(kind, count=8, seed=11):
    return pictures(kind, count, torch.Generator().manual_seed(seed))


def probabilities(net, images):
    return dc.logits(images, net).softmax(1)


def test_the_shapes_net_learns_its_five_classes(shapes_net):
    for kind in range(len(CLASSES)):
        assert (dc.logits(held_out(kind, 50), shapes_net).argmax(1) == kind).float().mean() > 0.95, CLASSES[kind]


def test_classify_names_the_top_classes_in_order(shapes_net):
    """Catches an ascending sort or names out of step with their indices."""
    images = torch.cat([held_out(VERTICAL, 8), held_out(DISC, 8)])
    predicted = dc.logits(images, shapes_net).argmax(1).tolist()
    assert predicted.count(VERTICAL) >= 7 and predicted.count(DISC) >= 7  # (the trained net differs a little by CPU)
    top = dc.classify(images, shapes_net, top_k=3)
    assert [row[0].index for row in top] == predicted
    assert [row[0].name for row in top] == [CLASSES[index] for index in predicted]
    for row in top:
        assert [p.probability for p in row] == sorted((p.probability for p in row), reverse=True)
        assert len(row) == 3 and sum(p.probability for p in row) <= 1 + 1e-6
    assert str(top[0][0]).startswith("vertical stripes (")


def test_gradient_saliency_lands_on_the_disc(shapes_net):
    """CS231n's map (max |grad| over colours) on disc pictures: the disc and a 3 px border hold at least
    twice the mean saliency (this net: 2.9x to 4.9x, mean 3.6x over 16 discs). Catches a map of the
    wrong class or of a constant gradient."""
    images, masks = discs(16, torch.Generator().manual_seed(3))
    saliency = dc.saliency_map(images, shapes_net, target=DISC)
    region = torch.nn.functional.max_pool2d(masks, 7, stride=1, padding=3)  # the disc grown by 3 px
    ratios = (saliency * region).flatten(1).sum(1) / region.flatten(1).sum(1) / saliency.flatten(1).mean(1)
    assert ratios.min() > 2.0, ratios


def _captum_model(net):
    extractor = net.extractor([dc.LOGITS])
    return lambda x: extractor(x)[dc.LOGITS]


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_each_method_equals_captums_implementation(shapes_net):
    """gradient, gradient x input, integrated gradients (Gauss-Legendre, both baselines) and Grad-CAM
    against captum on the same model and input. Catches a wrong sign, a lost factor (x - b), a wrong
    quadrature or a Grad-CAM weight taken over the wrong axis."""
    import captum.attr as captum  # a test dependency (pyproject [test]): missing fails, never skips
    image = torch.cat([held_out(CHECKERS, 1), held_out(DISC, 1)])
    model, target = _captum_model(shapes_net), CHECKERS
    close = lambda ours, theirs: torch.allclose(ours, theirs, rtol=1e-4, atol=1e-6 * theirs.abs().max().item())
    assert close(dc.attribution(image, shapes_net, target, "gradient"),
                 captum.Saliency(model).attribute(image, target=target, abs=True))
    assert close(dc.attribution(image, shapes_net, target, "gradient_x_input"),
                 captum.InputXGradient(model).attribute(image, target=target))
    ig = captum.IntegratedGradients(model)
    assert close(dc.attribution(image, shapes_net, target, "integrated_gradients", steps=64),
                 ig.attribute(image, target=target, n_steps=64, method="gausslegendre"))
    blurred = dc.gaussian_blur(image, SIZE / 20)
    assert close(dc.attribution(image, shapes_net, target, "integrated_gradients", steps=16, baseline="blur"),
                 ig.attribute(image, baselines=blurred, target=target, n_steps=16, method="gausslegendre"))
    assert torch.equal(dc.attribution(image, shapes_net, target, "gradcam"),  # default: the last layer before logits
                       dc.attribution(image, shapes_net, target, "gradcam", layer="relu3"))
    layer = dict(shapes_net.stages)["relu2"]
    assert close(dc.attribution(image, shapes_net, target, "gradcam", layer="relu2"),
                 captum.LayerGradCam(model, layer).attribute(image, target=target, relu_attributions=True))


def test_smoothgrad_is_the_mean_gradient_magnitude_over_noisy_copies(shapes_net):
    """The textbook formula with the same noise (captum draws its own). Catches averaging signed
    gradients, or noise that is not redrawn per sample."""
    image = held_out(DISC, 2)
    ours = dc.attribution(image, shapes_net, DISC, "smoothgrad", samples=6, noise=0.2, seed=4)
    for index in range(2):
        noise = 0.2 * torch.randn((6, 3, SIZE, SIZE), generator=dc.item_generator(4, index))
        noisy = (image[index:index + 1] + noise).requires_grad_(True)
        score = shapes_net.extractor([dc.LOGITS])(noisy)[dc.LOGITS][:, DISC].sum()
        gradient, = torch.autograd.grad(score, noisy)
        assert torch.allclose(ours[index], gradient.abs().mean(0), atol=1e-6)


def test_integrated_gradients_are_complete(shapes_net):
    """Attributions sum to f(x) - f(baseline); at 64 steps the largest error here is 2.7% from black,
    0.25% from the blurred image (bound: 5%).
    Catches a missing (x - baseline) factor or quadrature weights that do not sum to 1."""
    image = torch.cat([held_out(kind, 1) for kind in range(4)])
    for baseline in dc.BASELINES:
        attributions = dc.attribution(image, shapes_net, CHECKERS, "integrated_gradients", steps=64,
                                      baseline=baseline)
        start = torch.zeros_like(image) if baseline == "black" else dc.gaussian_blur(image, SIZE / 20)
        difference = dc.logits(image, shapes_net)[:, CHECKERS] - dc.logits(start, shapes_net)[:, CHECKERS]
        error = (attributions.sum((1, 2, 3)) - difference).abs() / difference.abs().clamp_min(1e-3)
        assert error.max() < 0.05, (baseline, error)


def test_predicted_target_and_maps_are_per_item(shapes_net):
    """Catches target -1 resolved from item 0 for the whole batch."""
    images = torch.cat([held_out(HORIZONTAL, 1), held_out(VERTICAL, 1)])
    assert torch.equal(dc.attribution(images, shapes_net, -1, "gradient"),
                       torch.cat([dc.attribution(images[:1], shapes_net, HORIZONTAL, "gradient"),
                                  dc.attribution(images[1:], shapes_net, VERTICAL, "gradient")]))
    gradient = dc.attribution(images, shapes_net, None, "gradient")
    cs231n = gradient.abs().amax(1, keepdim=True)  # CS231n: the largest magnitude over the colours
    assert torch.allclose(dc.saliency_map(images, shapes_net), cs231n / cs231n.flatten(1).amax(1).view(-1, 1, 1, 1))
    for method in dc.SALIENCY_METHODS:
        maps = dc.saliency_map(images, shapes_net, None, method, samples=2, steps=4, layer="relu2")
        assert maps.shape == (2, 1, SIZE, SIZE) and maps.min() >= 0
        assert torch.allclose(maps.flatten(1).amax(1), torch.ones(2)), method


def test_heatmap_blends_jet_colours_over_the_image():
    image = torch.full((1, 3, 4, 4), 0.5)
    saliency = torch.zeros(1, 1, 4, 4)
    saliency[..., 0, 0] = 1
    assert torch.equal(dc.heatmap(image, saliency, blend=0.0), image)
    colours = dc.heatmap(image, saliency, blend=1.0)
    assert colours[0, 0, 0, 0] > colours[0, 2, 0, 0] and colours[0, 2, 3, 3] > colours[0, 0, 3, 3]  # hot red, cold blue


def test_class_visualisation_paints_vertical_stripes(shapes_net):
    """From noise, ascent on 'vertical stripes' gives pictures the net calls that (p > 0.9) whose
    brightness varies along x more than along y. Catches ascent on the wrong class or a flipped sign."""
    made = dc.class_visualize(shapes_net, VERTICAL, batch=2, steps=60, jitter=4, seed=0)
    assert made.shape == (2, 3, SIZE, SIZE) and not torch.equal(made[0], made[1])
    assert (probabilities(shapes_net, made)[:, VERTICAL] > 0.9).all()
    grey = made.mean(1)
    along_x = (grey[:, :, 1:] - grey[:, :, :-1]).square().mean()
    along_y = (grey[:, 1:, :] - grey[:, :-1, :]).square().mean()
    assert along_x > 1.5 * along_y


def test_class_visualisation_octaves_and_init(shapes_net):
    start = held_out(HORIZONTAL, 1)
    made = dc.class_visualize(shapes_net, CHECKERS, size=(48, 40), steps=20, octaves=2, init=start)
    assert made.shape == (1, 3, 48, 40)
    assert dc.class_visualize(shapes_net, CHECKERS, steps=0, init=start).equal(start)


def test_fooling_turns_stripes_into_checkers_with_a_small_change(shapes_net):
    """Normalised ascent: every item becomes 'checkers' within 100 steps (here 11 or 12) with an L-inf
    change below 0.3 (here 0.17 to 0.24). Catches ascent away from the target."""
    images = held_out(HORIZONTAL, 4)
    fooled, reports = dc.fool(images, shapes_net, CHECKERS, max_steps=100)
    assert (dc.logits(fooled, shapes_net).argmax(1) == CHECKERS).all()
    for report, original, changed in zip(reports, images, fooled):
        assert report.reached and report.before.index == HORIZONTAL and report.after.index == CHECKERS
        assert 1 <= report.steps <= 100 and report.linf < 0.3
        assert report.linf == pytest.approx((changed - original).abs().max().item())
        assert str(report).startswith("fooled: horizontal stripes")


def test_pgd_and_fgsm_never_exceed_epsilon_and_failure_is_reported(shapes_net):
    """Catches a missing projection (PGD drifting past epsilon) and a failure reported as success."""
    images = held_out(HORIZONTAL, 3)
    epsilon = 8 / 255
    for method in ("pgd", "fgsm"):
        fooled, reports = dc.fool(images, shapes_net, CHECKERS, method=method, epsilon=epsilon, max_steps=20)
        assert (fooled - images).abs().max() <= epsilon + 1e-6
        assert fooled.min() >= 0 and fooled.max() <= 1
        predicted = dc.logits(fooled, shapes_net).argmax(1)
        for report, label in zip(reports, predicted):
            assert report.reached == (label.item() == CHECKERS) and report.linf <= epsilon + 1e-6
            assert ("NOT fooled" in str(report)) == (not report.reached)
    _, strong = dc.fool(images, shapes_net, CHECKERS, method="pgd", epsilon=0.3, max_steps=40)
    assert all(report.reached for report in strong)


def test_feature_inversion_from_an_early_layer_recovers_the_picture(shapes_net):
    """From noise, matching relu1 gives a picture much closer to the input than the noise was
    (PSNR here: 7.6 and 8.4 dB for the noise, 22.5 and 24.0 dB after). Catches matching the wrong target."""
    image = torch.cat([held_out(DISC, 1), held_out(CHECKERS, 1)])
    inverted = dc.invert_features(image, shapes_net, "relu1", steps=150, learning_rate=0.05, seed=0)
    noise = torch.cat([torch.rand((1, 3, SIZE, SIZE), generator=dc.item_generator(0, i)) for i in range(2)])
    assert (dc.psnr(inverted, image) > dc.psnr(noise, image) + 8).all(), (dc.psnr(inverted, image), dc.psnr(noise, image))


def test_bad_targets_methods_and_heads_are_named(shapes_net, googlenet):
    image = held_out(DISC, 1)
    with pytest.raises(dc.DreamError, match="target: shapes has classes 0..4, got 7"):
        dc.attribution(image, shapes_net, 7)
    with pytest.raises(dc.DreamError, match="method: unknown 'lime'"):
        dc.saliency_map(image, shapes_net, method="lime")
    with pytest.raises(dc.DreamError, match="epsilon"):
        dc.fool(image, shapes_net, CHECKERS, method="pgd", epsilon=0)
    headless = dc.backbone_from_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), native_size=16)
    with pytest.raises(dc.DreamError, match="no 'logits' layer"):
        dc.classify(image, headless)


def test_progress_runs_to_the_end_and_cancel_stops_within_a_step(shapes_net):
    """Catches an early stop (a fooled item) that leaves the bar short, and cancel asked only per item."""
    reports = []
    dc.fool(held_out(HORIZONTAL, 2), shapes_net, CHECKERS, max_steps=100,
            progress=lambda done, total, preview: reports.append((done, total)))
    assert reports[-1] == (200, 200) and [d for d, _ in reports] == sorted(d for d, _ in reports)
    reports.clear()
    dc.class_visualize(shapes_net, VERTICAL, size=(48, 48), batch=2, steps=3, octaves=2,
                       progress=lambda done, total, preview: reports.append(done))
    assert reports == list(range(1, 13))
    asked = []
    with pytest.raises(dc.DreamCancelled):
        dc.invert_features(held_out(DISC, 2), shapes_net, "relu1", steps=10,
                           cancel=lambda: asked.append(1) or len(asked) > 3)
    assert len(asked) == 4


def test_the_fourier_parameterisation_round_trips_an_image():
    """Catches a scale, colour mix or sigmoid left out of the inverse (or of the render)."""
    image = 0.05 + 0.9 * torch.rand(2, 3, 40, 57, generator=torch.Generator().manual_seed(0))
    for decorrelate in (True, False):
        assert torch.allclose(dc.FourierImage.from_image(image, decorrelate).render(), image, atol=1e-5)
    start = dc.FourierImage((1, 32, 32), torch.Generator().manual_seed(0)).render()
    assert (start - 0.5).abs().max() < 0.05  # it starts near grey, from a small seeded spectrum


def test_feature_visualisation_from_nothing_makes_the_class(shapes_net):
    """Fourier basis, decorrelated colour and transforms: each picture of 'vertical stripes' is classified
    so with p > 0.9 (here 1.00 after 64 steps), and varies more along x than y. Catches a transform
    that also lands in the returned picture, or the wrong class."""
    made = dc.feature_visualize(shapes_net, dc.channel(dc.LOGITS, VERTICAL), size=(48, 48), batch=2, steps=64)
    assert made.shape == (2, 3, 48, 48) and not torch.equal(made[0], made[1])
    assert (probabilities(shapes_net, made)[:, VERTICAL] > 0.9).all()
    grey = made.mean(1)
    assert (grey[:, :, 1:] - grey[:, :, :-1]).square().mean() > (grey[:, 1:] - grey[:, :-1]).square().mean()
    with pytest.raises(dc.DreamError, match="parameterization"):
        dc.feature_visualize(shapes_net, dc.channel(dc.LOGITS, 0), parameterization="cppn")


def test_neuron_is_the_centre_of_its_channel():
    acts = {"a": torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).view(2, 3, 5, 4)}
    assert torch.equal(dc.neuron("a", 1)(acts), acts["a"][:, 1, 2, 2])


def test_the_trust_check_tells_the_natural_path_of_a_feature_from_another(shapes_net):
    """A class visualisation's path through the shapes CNN follows natural pictures of its class at the deep
    layers, and parts from another class's (measured: relu3 1.00 against -0.17 for horizontal stripes).
    The one-line bug: the references' profile compared with itself (no dependence on the visualisation)."""
    from shapes import pictures

    generator = torch.Generator().manual_seed(1)
    made = dc.class_visualize(shapes_net, 0, size=(32, 32), steps=60, jitter=2)
    same = {s.layer: s for s in dc.path_similarity(shapes_net, made, pictures(0, 8, generator))}
    other = {s.layer: s for s in dc.path_similarity(shapes_net, made, pictures(1, 8, generator))}
    assert list(same) == list(shapes_net.spec.layers)
    assert same["relu3"].similarity > other["relu3"].similarity + 0.5
    assert same["relu3"].similarity > same["relu3"].natural - 0.2  # near what natural pictures share
    with pytest.raises(dc.DreamError, match="references: at least 2"):
        dc.path_similarity(shapes_net, made, pictures(0, 1, generator))


def test_the_trust_check_node_reports_a_line_per_layer(pack, shapes_net):
    from shapes import pictures

    generator = torch.Generator().manual_seed(2)
    node = pack.NODE_CLASS_MAPPINGS["DD_TrustCheck"]()
    with torch.inference_mode():
        report, = node.check(pictures(3, 2, generator).movedim(1, -1), pictures(3, 4, generator).movedim(1, -1),
                             shapes_net, "relu2")
    lines = report.splitlines()
    assert [line.split(":")[0] for line in lines] == ["conv1", "relu1", "pool1", "conv2", "relu2"]
    assert all("natural pictures among themselves" in line for line in lines)
