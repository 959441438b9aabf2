package dstoken_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

func ExampleMinter_Mint() {
	m := dstoken.NewMinter([]byte("mysecret"))
	token := m.Mint(dstoken.Claims{
		Actor:    "root",
		IssuedAt: 1700000000, // zero means now
	})
	fmt.Println(token)
	// Output:
	// dstok_eyJhIjoicm9vdCIsInQiOjE3MDAwMDAwMDB9.zzlqKRNLjeami4fmPgv-w4tXjdE
}

func ExampleVerifier_Verify() {
	v := dstoken.NewVerifier([]byte("s"))
	token := "dstok_eyJhIjoiYWxpY2UiLCJ0IjoxNzAwMDAwMDAwLCJkIjozNjAwfQ.JRqhbe9niLvPeWUziEQ2eUgnHxs"

	got, err := v.Verify(token, dstoken.VerifyOptions{Now: time.Unix(1700001800, 0)})
	if err != nil {
		panic(err)
	}
	actor, _ := got.Actor.MarshalJSON()
	fmt.Println(string(actor))

	_, err = v.Verify(token, dstoken.VerifyOptions{Now: time.Unix(1700003601, 0)})
	var invalid *dstoken.InvalidTokenError
	if errors.As(err, &invalid) {
		fmt.Println("401:", invalid.Message)
	}
	// Output:
	// {"id":"alice","token":"dstok","token_expires":1700003600}
	// 401: Token has expired
}

func ExampleDecode() {
	d, err := dstoken.Decode("dstok_.eJyrVkpUslIqys8vUdJRKlGyMjQ3gAIdpfgiJatqkHy0UlkmUHqQEbG1tQBgoDIG.OTsliE95KAV58YdXYUPTRw87NmE")
	if err != nil {
		panic(err)
	}
	fmt.Println(d.Claims.Actor, d.Claims.IssuedAt, len(d.Claims.Restrictions.All), d.Claims.Restrictions.All[0])
	// Output:
	// root 1700000000 30 view-instance
}
