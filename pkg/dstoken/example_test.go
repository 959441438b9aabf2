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
		IssuedAt: 1700000000, // usually time.Now().Unix()
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

func ExampleIndentPayload() {
	d, err := dstoken.Decode("dstok_eyJhIjoicm9vdCIsInQiOjE3MDAwMDAwMDB9.zzlqKRNLjeami4fmPgv-w4tXjdE")
	if err != nil {
		panic(err)
	}
	text, err := dstoken.IndentPayload(d.Payload, 2)
	if err != nil {
		panic(err)
	}
	fmt.Println(text)
	text, _ = dstoken.IndentPayload([]byte(`{"a":"root","t":1,"a":"Jürgen 😀","_r":{"a":[]},"x":1e16}`), 2)
	fmt.Println(text)
	// Output:
	// {
	//   "a": "root",
	//   "t": 1700000000
	// }
	// {
	//   "a": "J\u00fcrgen \ud83d\ude00",
	//   "t": 1,
	//   "_r": {
	//     "a": []
	//   },
	//   "x": 1e+16
	// }
}
