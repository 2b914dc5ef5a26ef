module kindred/tls-front

go 1.22
