package lora

import "math"

// The element-wise and row-wise operations of the block, each forward next
// to its backward, on n tokens of c features, (n,c) row-major. Backward
// functions accumulate parameter gradients (+=) and take nil gradient
// slices for frozen parameters.

// layerNormForward normalises each of the n rows of z over its c features:
//
//	x̂ = (z − mean(z)) · rstd,   rstd = 1/√(var(z) + eps)   (biased variance)
//	out = x̂·γ + β
//
// as torch.nn.LayerNorm (and the ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add
// nodes torch.onnx exports for it). The statistics are accumulated in
// float64. It writes xhat (n,c) and rstd (n), which the backward needs; xhat
// may alias z.
func layerNormForward[F Float](out, xhat, rstd, z, gamma, beta []F, n, c int, eps float64) {
	for t := range n {
		zt := z[t*c : (t+1)*c]
		var mean float64
		for _, v := range zt {
			mean += float64(v)
		}
		mean /= float64(c)
		var v2 float64
		for _, v := range zt {
			d := float64(v) - mean
			v2 += d * d
		}
		r := 1 / math.Sqrt(v2/float64(c)+eps)
		rstd[t] = F(r)
		xt, ot := xhat[t*c:(t+1)*c], out[t*c:(t+1)*c]
		for j, v := range zt {
			x := F((float64(v) - mean) * r)
			xt[j] = x
			ot[j] = x*gamma[j] + beta[j]
		}
	}
}

// layerNormBackward is the backward of layerNormForward: with g = dout·γ,
//
//	dz = rstd · (g − mean(g) − x̂·mean(g·x̂))
//	dγ += Σ_t dout·x̂,   dβ += Σ_t dout
//
// It writes dz (which may alias dout) and accumulates into dgamma and dbeta
// unless they are nil.
func layerNormBackward[F Float](dz, dgamma, dbeta, dout, xhat, rstd, gamma []F, n, c int) {
	for t := range n {
		dt, xt := dout[t*c:(t+1)*c], xhat[t*c:(t+1)*c]
		var mg, mgx float64
		for j, d := range dt {
			g := float64(d * gamma[j])
			mg += g
			mgx += g * float64(xt[j])
		}
		mg /= float64(c)
		mgx /= float64(c)
		if dgamma != nil {
			for j, d := range dt {
				dgamma[j] += d * xt[j]
				dbeta[j] += d
			}
		}
		r := float64(rstd[t])
		zt := dz[t*c : (t+1)*c]
		for j, d := range dt {
			g := float64(d * gamma[j])
			zt[j] = F(r * (g - mg - float64(xt[j])*mgx))
		}
	}
}

// geluForward is the exact GELU of BERT's hidden_act "gelu"
// (torch.nn.functional.gelu, approximate="none"), element-wise:
//
//	g = u · Φ(u) = 0.5·u·(1 + erf(u/√2))
func geluForward[F Float](g, u []F) {
	for i, v := range u {
		x := float64(v)
		g[i] = F(0.5 * x * (1 + math.Erf(x/math.Sqrt2)))
	}
}

// geluBackward is the backward of geluForward, in place on dg:
//
//	du = dg · (Φ(u) + u·φ(u)),   φ(u) = exp(−u²/2)/√(2π)
func geluBackward[F Float](dg, u []F) {
	const invSqrt2Pi = 0.3989422804014327 // 1/√(2π)
	for i, v := range u {
		x := float64(v)
		d := 0.5*(1+math.Erf(x/math.Sqrt2)) + x*invSqrt2Pi*math.Exp(-0.5*x*x)
		dg[i] = F(float64(dg[i]) * d)
	}
}

// softmaxForward replaces each of the n rows of s (n,n) by its softmax,
// exp(s − max s)/Σ exp(s − max s), with the exponentials in float64.
func softmaxForward[F Float](s []F, n int) {
	for i := range n {
		row := s[i*n : (i+1)*n]
		m := row[0]
		for _, v := range row[1:] {
			m = max(m, v)
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v - m))
			row[j] = F(e)
			sum += e
		}
		inv := 1 / sum
		for j, v := range row {
			row[j] = F(float64(v) * inv)
		}
	}
}

// softmaxBackward turns dp, the gradient with respect to the probabilities
// p (n,n) of softmaxForward, into the gradient with respect to its input,
// in place:
//
//	ds_ij = p_ij · (dp_ij − Σ_k p_ik·dp_ik)
func softmaxBackward[F Float](dp, p []F, n int) {
	for i := range n {
		pr, dr := p[i*n:(i+1)*n], dp[i*n:(i+1)*n]
		var dot float64
		for j, v := range pr {
			dot += float64(v) * float64(dr[j])
		}
		for j, v := range pr {
			dr[j] = F(float64(v) * (float64(dr[j]) - dot))
		}
	}
}

// addBias adds b (c) to each of the n rows of y (n,c).
func addBias[F Float](y, b []F, n, c int) {
	for t := range n {
		yt := y[t*c : (t+1)*c]
		for j, v := range b {
			yt[j] += v
		}
	}
}

// sumRows accumulates the column sums of dy (n,c) into db (c), in float64.
func sumRows[F Float](db, dy []F, n, c int, acc []float64) {
	acc = acc[:c]
	clear(acc)
	for t := range n {
		for j, v := range dy[t*c : (t+1)*c] {
			acc[j] += float64(v)
		}
	}
	for j, v := range acc {
		db[j] += F(v)
	}
}
