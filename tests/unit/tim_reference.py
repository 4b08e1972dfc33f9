"""TIM against an independent implementation of the authors' formulation
(Zhou et al. 2011, as the DFEW authors ran it in Matlab, less their small
random regulariser): remove the mean, take the SVD of the frames, embed them
on the path graph's Laplacian eigenvectors, fit the linear map from the
embedding to the frames, and resample the curve sin(pi k t + pi (N - k)/(2N))
at t = linspace(1/N, 1, M). dfew's C code (media/tim.c) uses the per-pixel
cosine form instead; both must agree to 1e-4 on random frames.

usage: python3 tim_reference.py PATH/TO/test_tim   (needs python3-numpy)"""
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print('python3-numpy is missing: install it (scripts/setup-deps.sh does)', file=sys.stderr)
    sys.exit(1)


def tim_reference(X, M):
    """X: D x N frames (columns). Returns D x M."""
    D, N = X.shape
    mu = X.mean(axis=1, keepdims=True)
    if N == 1:
        return np.repeat(mu, M, axis=1)
    Xc = X - mu
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    r = int((S > S[0] * 1e-10).sum()) if S[0] > 0 else 0
    if r == 0:
        return np.repeat(mu, M, axis=1)
    U, S, Vt = U[:, :r], S[:r], Vt[:r]
    Z = Vt                                    # r x N: the frames in the SVD basis
    # path graph P_N: adjacency of consecutive frames, Laplacian L = D - A
    A = np.diag(np.ones(N - 1), 1) + np.diag(np.ones(N - 1), -1)
    L = np.diag(A.sum(axis=1)) - A
    evals, evecs = np.linalg.eigh(L)
    Y = evecs[:, 1:].T                        # (N-1) x N, the constant eigenvector dropped
    # the analytic curve the eigenvectors sample: sin(pi k t + pi (N - k)/(2N)), t = i/N
    t = np.arange(1, N + 1) / N
    k = np.arange(1, N)[:, None]
    curve = lambda tt: np.sin(np.pi * k * tt[None, :] + np.pi * (N - k) / (2 * N))
    C = curve(t)
    scale = (Y * C).sum(axis=1) / (C * C).sum(axis=1)
    assert np.abs(Y - scale[:, None] * C).max() < 1e-8, 'path-graph eigenvectors are not the sine curve'
    # W^T maps the SVD coordinates to the embedding: Y = W^T Z (least squares)
    Wt = Y @ np.linalg.pinv(Z)
    tn = np.linspace(1.0 / N, 1.0, M)
    Ynew = scale[:, None] * curve(tn)        # (N-1) x M
    Znew = np.linalg.pinv(Wt) @ Ynew          # back to SVD coordinates
    return U @ (S[:, None] * Znew) + mu


def c_weights(exe, N, M, mode='tim'):
    out = subprocess.run([exe, '--weights', str(N), str(M), mode], check=True, capture_output=True, text=True).stdout
    return np.array([[float(v) for v in line.split()] for line in out.splitlines()])


def main():
    exe = sys.argv[1]
    rng = np.random.default_rng(20201012)
    worst = 0.0
    for N, M in [(1, 16), (2, 16), (3, 16), (5, 16), (10, 16), (16, 16), (17, 16), (40, 16), (72, 16), (158, 16),
                 (30, 8), (12, 32)]:
        D = max(3 * N, 64)                    # pixels x channels; more than frames, as in video
        X = rng.uniform(0, 255, size=(D, N))
        ref = tim_reference(X, M)
        W = c_weights(exe, N, M)
        assert W.shape == (M, N), W.shape
        got = X @ W.T
        err = np.abs(got - ref).max()
        worst = max(worst, err)
        print('N=%3d M=%2d  max |C - reference| = %.3g' % (N, M, err))
        assert err < 1e-4, 'TIM differs from the SVD + Laplacian reference by %g for N=%d, M=%d' % (err, N, M)
    # N = 16: the identity (also in the reference)
    X = rng.uniform(0, 255, size=(64, 16))
    assert np.abs(tim_reference(X, 16) - X).max() < 1e-8
    print('TIM matches the SVD + path-graph Laplacian reference: worst error %.3g (limit 1e-4)' % worst)


if __name__ == '__main__':
    main()
